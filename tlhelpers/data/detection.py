"""Images with boxes: a checked dataset of (image, target) pairs for object detection.

Items follow torchvision's detection convention: the image is a
``tv_tensors.Image`` (``uint8``, ``3 x H x W``) and the target a dict with
``"boxes"``, a ``tv_tensors.BoundingBoxes`` in pixel ``(x1, y1, x2, y2)``
coordinates, and ``"labels"``, ``int64`` class indices counted from 1 (0 is the
background class of torchvision's detectors). ``torchvision.transforms.v2``
transforms move the boxes with the image.

Boxes are checked when the dataset is built: a box outside its image, an empty
box (``x2 <= x1``) or a class that is not in the class list is an error naming
the file and the box, so a bad annotation never reaches training.

Examples
--------
>>> from tlhelpers.data import boxes_from_csv
>>> import io
>>> rows = io.StringIO("filename,width,height,class,xmin,ymin,xmax,ymax\\na.jpg,10,8,cat,1,2,5,6\\n")
>>> boxes_from_csv(rows, ["cat"])
{'a.jpg': {'size': (10, 8), 'boxes': [(1.0, 2.0, 5.0, 6.0)], 'labels': [1]}}
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import torch
from torch.utils.data import Dataset

from .images import load_image

CSV_COLUMNS = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")


def check_box(box: Sequence[float], size: tuple[int, int], *, where: str = "a box") -> None:
    """Raise ``ValueError`` unless ``box = (x1, y1, x2, y2)`` is non-empty and inside an image of ``size = (width, height)``.

    Examples
    --------
    >>> from tlhelpers.data.detection import check_box
    >>> check_box((0, 0, 10, 5), (10, 5))
    >>> check_box((2, 1, 12, 4), (10, 5), where="x.jpg")
    Traceback (most recent call last):
    ...
    ValueError: x.jpg: box (2, 1, 12, 4) reaches outside the 10x5 image
    """
    x1, y1, x2, y2 = box
    w, h = size
    if not x2 > x1 or not y2 > y1:
        raise ValueError(f"{where}: box {tuple(box)} is empty (it needs x2 > x1 and y2 > y1)")
    if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
        raise ValueError(f"{where}: box {tuple(box)} reaches outside the {w}x{h} image")


def boxes_from_csv(rows: str | os.PathLike | IO[str], classes: Sequence[str]) -> dict[str, dict]:
    """Read a box table (one row per box: ``filename,width,height,class,xmin,ymin,xmax,ymax``).

    Parameters
    ----------
    rows : path or text file
        The CSV file (the raccoon dataset's format, also written by many labelling tools).
    classes : sequence of str
        The class names; class ``classes[k]`` gets label ``k + 1``.

    Returns
    -------
    dict
        ``{filename: {"size": (width, height), "boxes": [...], "labels": [...]}}`` in file order.

    Raises
    ------
    ValueError
        Missing columns, a value that is not a number, a class not in ``classes``,
        a box outside its image or empty, or one file given two sizes (each
        message names the row).
    """
    own = not hasattr(rows, "read")
    f = open(rows, newline="") if own else rows
    try:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"the box table lacks columns {missing}; it has {reader.fieldnames}")
        out: dict[str, dict] = {}
        for line, row in enumerate(reader, start=2):
            where = f"row {line} ({row['filename']})"
            if row["class"] not in classes:
                raise ValueError(f"{where}: class {row['class']!r} is not one of {list(classes)}")
            try:
                size = (int(row["width"]), int(row["height"]))
                box = tuple(float(row[c]) for c in ("xmin", "ymin", "xmax", "ymax"))
            except (TypeError, ValueError):
                raise ValueError(f"{where}: width, height and box corners must be numbers, got "
                                 f"{[row[c] for c in CSV_COLUMNS[1:3] + CSV_COLUMNS[4:]]}") from None
            check_box(box, size, where=where)
            entry = out.setdefault(row["filename"], {"size": size, "boxes": [], "labels": []})
            if entry["size"] != size:
                raise ValueError(f"{where}: size {size} differs from {entry['size']} given earlier for this file")
            entry["boxes"].append(box)
            entry["labels"].append(list(classes).index(row["class"]) + 1)
        return out
    finally:
        if own:
            f.close()


class DetectionDataset(Dataset):
    """(image, target) pairs for object detection, with checked boxes.

    Parameters
    ----------
    root : path
        Folder holding the images.
    annotations : dict
        ``{filename: {"size": (width, height), "boxes": [(x1, y1, x2, y2), ...],
        "labels": [...]}}`` as :func:`boxes_from_csv` returns it (labels from 1).
    classes : sequence of str
        Class names (label ``k`` is ``classes[k - 1]``).
    transforms : callable, optional
        Called as ``transforms(image, target)``; ``torchvision.transforms.v2``
        transforms move the boxes with the image.
    max_pixels : int, optional
        Refuse larger images (see :func:`~tlhelpers.data.load_image`).

    Raises
    ------
    ValueError
        When an item is read: the image's size differs from the annotated one
        (boxes would land in the wrong place).

    Examples
    --------
    >>> from tlhelpers.data import load_dataset
    >>> ds = load_dataset("raccoon", "test")  # doctest: +SKIP
    >>> image, target = ds[0]  # doctest: +SKIP
    >>> target["boxes"].shape, target["labels"]  # doctest: +SKIP
    (torch.Size([1, 4]), tensor([1]))
    """

    def __init__(self, root: str | os.PathLike, annotations: dict[str, dict], classes: Sequence[str], *,
                 transforms: Callable | None = None, max_pixels: int | None = None):
        self.root, self.classes = Path(root), list(classes)
        self.files = list(annotations)
        self.annotations = annotations
        for name, a in annotations.items():
            for box, label in zip(a["boxes"], a["labels"], strict=True):
                check_box(box, a["size"], where=name)
                if not 1 <= label <= len(self.classes):
                    raise ValueError(f"{name}: label {label} is not a class (1..{len(self.classes)}: {self.classes})")
        self.transforms, self.max_pixels = transforms, max_pixels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        from torchvision import tv_tensors

        name = self.files[i]
        a = self.annotations[name]
        image = load_image(self.root / name, max_pixels=self.max_pixels)
        if image.size != a["size"]:
            raise ValueError(f"{self.root / name} is {image.width}x{image.height} pixels but its boxes were "
                             f"drawn on a {a['size'][0]}x{a['size'][1]} image")
        image = tv_tensors.Image(image)   # uint8, 3 x H x W
        target = {
            "boxes": tv_tensors.BoundingBoxes(torch.tensor(a["boxes"], dtype=torch.float32).reshape(-1, 4),
                                              format="XYXY", canvas_size=(image.shape[-2], image.shape[-1])),
            "labels": torch.tensor(a["labels"], dtype=torch.int64),
        }
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


def collate_detection(batch: Sequence[tuple]) -> tuple[list, list]:
    """Batch detection items as torchvision's detectors take them: a list of images and a list of targets.

    Images differ in size, so they are not stacked; pass this as a
    ``DataLoader``'s ``collate_fn``.

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.data import collate_detection
    >>> images, targets = collate_detection([(torch.zeros(3, 4, 5), {"labels": torch.tensor([1])})] * 2)
    >>> len(images), targets[1]["labels"].tolist()
    (2, [1])
    """
    images, targets = zip(*batch) if batch else ((), ())
    return list(images), list(targets)
