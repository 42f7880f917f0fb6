"""Images with per-pixel labels: a checked dataset of (image, mask) pairs.

A segmentation mask is an ``H x W`` array of class indices, one per pixel. Many
datasets store it as a colour image instead (soil black, crop green, weed red);
:func:`mask_from_colors` turns such an image into indices and refuses any colour
that is not in the class list, so a mislabelled pixel is an error, not a new class.

Items are ``(image, mask)``: a ``tv_tensors.Image`` (``uint8``, ``3 x H x W``) and
a ``tv_tensors.Mask`` (``int64``, ``H x W``), so that ``torchvision.transforms.v2``
crops, flips and resizes both together (masks with nearest-neighbour sampling).

Examples
--------
>>> import numpy as np
>>> from tlhelpers.data import mask_from_colors
>>> rgb = np.zeros((2, 3, 3), np.uint8); rgb[0, 1] = (255, 0, 0)
>>> mask_from_colors(rgb, [(0, 0, 0), (0, 255, 0), (255, 0, 0)]).tolist()
[[0, 2, 0], [0, 0, 0]]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .images import load_image


def mask_from_colors(rgb: np.ndarray, colors: Sequence[tuple[int, int, int]], *,
                     where: str = "the mask") -> np.ndarray:
    """Class indices of an ``H x W x 3`` colour mask: pixel colour ``colors[k]`` becomes ``k``.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``uint8`` array of shape ``(H, W, 3)``.
    colors : sequence of (r, g, b)
        One colour per class, in class order.
    where : str
        Names the file in error messages.

    Raises
    ------
    ValueError
        The array is not ``H x W x 3``, or a pixel has a colour that is not in
        ``colors`` (the message gives the colour, how many pixels and one position).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{where}: expected an H x W x 3 colour image, got shape {rgb.shape}")
    code = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    keys = np.array([(r << 16) | (g << 8) | b for r, g, b in colors], dtype=np.int64)
    mask = np.full(code.shape, -1, dtype=np.int64)
    for k, key in enumerate(keys):
        mask[code == key] = k
    if (mask < 0).any():
        bad = np.argwhere(mask < 0)
        y, x = bad[0]
        raise ValueError(f"{where}: {len(bad)} pixels have colour {tuple(int(v) for v in rgb[y, x])} "
                         f"(first at row {y}, column {x}), which is not a class colour; "
                         f"the classes' colours are {list(map(tuple, colors))}")
    return mask


class SegmentationDataset(Dataset):
    """(image, mask) pairs from two lists of files, checked when read.

    Parameters
    ----------
    images : sequence of path
        RGB image files.
    masks : sequence of path
        One mask file per image: a colour image decoded with ``colors``, or a
        single-channel image of class indices when ``colors`` is None.
    classes : sequence of str
        Class names; mask value ``k`` is ``classes[k]``.
    colors : sequence of (r, g, b), optional
        The colour of each class in the mask files.
    threshold : int, optional
        For two classes stored as a greyscale mask (often saved as JPEG-like
        greys, not clean 0 and 255): a pixel at or above ``threshold`` is class 1.
    transforms : callable, optional
        Called as ``transforms(image, mask)`` and returns both, e.g. a
        ``torchvision.transforms.v2.Compose`` (which moves the two together).
    max_pixels : int, optional
        Refuse larger images (see :func:`~tlhelpers.data.load_image`).

    Raises
    ------
    ValueError
        Different numbers of images and masks; when an item is read, a mask
        whose size differs from its image's or a value outside the classes.

    Examples
    --------
    >>> from tlhelpers.data import load_dataset
    >>> ds = load_dataset("cwfid", "train")  # doctest: +SKIP
    >>> image, mask = ds[0]  # doctest: +SKIP
    >>> ds.classes  # doctest: +SKIP
    ['soil', 'crop', 'weed']
    """

    def __init__(self, images: Sequence[str | os.PathLike], masks: Sequence[str | os.PathLike],
                 classes: Sequence[str], *, colors: Sequence[tuple[int, int, int]] | None = None,
                 threshold: int | None = None, transforms: Callable | None = None,
                 max_pixels: int | None = None):
        if len(images) != len(masks):
            raise ValueError(f"{len(images)} images but {len(masks)} masks: each image needs one mask")
        if colors is not None and len(colors) != len(classes):
            raise ValueError(f"{len(classes)} classes but {len(colors)} colours")
        if threshold is not None and (colors is not None or len(classes) != 2):
            raise ValueError("threshold= reads a greyscale mask of two classes; "
                             f"got {len(classes)} classes{' and colours' if colors is not None else ''}")
        self.threshold = threshold
        self.images, self.masks = [Path(p) for p in images], [Path(p) for p in masks]
        self.classes, self.colors = list(classes), colors
        self.transforms, self.max_pixels = transforms, max_pixels

    def __len__(self) -> int:
        return len(self.images)

    def read_mask(self, i: int) -> np.ndarray:
        """The mask of item ``i`` as an ``H x W`` array of class indices (no transforms)."""
        path = self.masks[i]
        if self.colors is not None:
            rgb = np.asarray(load_image(path, max_pixels=self.max_pixels))
            return mask_from_colors(rgb, self.colors, where=str(path))
        from PIL import Image

        with Image.open(path) as raw:
            if self.threshold is not None:
                return (np.asarray(raw.convert("L")) >= self.threshold).astype(np.int64)
            mask = np.asarray(raw).astype(np.int64)
        if mask.ndim != 2 or mask.min() < 0 or mask.max() >= len(self.classes):
            raise ValueError(f"{path}: expected an H x W mask of values 0..{len(self.classes) - 1} "
                             f"({self.classes}), got shape {mask.shape} with values {np.unique(mask)[:8]}")
        return mask

    def __getitem__(self, i: int):
        from torchvision import tv_tensors

        image = load_image(self.images[i], max_pixels=self.max_pixels)
        mask = self.read_mask(i)
        if mask.shape != (image.height, image.width):
            raise ValueError(f"{self.masks[i]}: mask is {mask.shape[1]}x{mask.shape[0]} pixels but its image "
                             f"{self.images[i].name} is {image.width}x{image.height}")
        image = tv_tensors.Image(image)   # uint8, 3 x H x W
        mask = tv_tensors.Mask(torch.from_numpy(mask))
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image, mask
