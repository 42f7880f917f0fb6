"""Datasets held in memory as arrays, and the IDX files (MNIST's format) they are often read from."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset


class ArrayDataset(Dataset):
    """Images held in memory as a uint8 array (N, H, W) or (N, H, W, C), with labels.

    ``dataset[i]`` is ``(transform(image), label)`` where ``image`` is a float
    tensor (C, H, W) in [0, 1]. ``images`` and ``targets`` are public, so a
    notebook can also take the whole array at once (:meth:`tensors`).

    Examples
    --------
    >>> import numpy as np
    >>> from tlhelpers.data import ArrayDataset
    >>> ds = ArrayDataset(np.zeros((3, 4, 4), np.uint8), [0, 1, 0], ["a", "b"])
    >>> ds[1][0].shape, ds[1][1], ds.tensors()[0].shape
    (torch.Size([1, 4, 4]), 1, torch.Size([3, 1, 4, 4]))
    """

    def __init__(self, images: np.ndarray, targets, classes: Sequence[str],
                 *, transform: Callable | None = None) -> None:
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise ValueError(f"images must be uint8, not {images.dtype}")
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} labels")
        self.images, self.targets = images, np.asarray(targets, dtype=np.int64).tolist()
        self.classes, self.transform = list(classes), transform

    def __len__(self) -> int:
        return len(self.images)

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a)).float().div_(255)
        if self.images.ndim == 4:  # (..., H, W, C) -> (..., C, H, W)
            return t.movedim(-1, -3)
        return t.unsqueeze(-3)     # (..., H, W) -> (..., 1, H, W)

    def __getitem__(self, index: int):
        x = self._tensor(self.images[index])
        if self.transform is not None:
            x = self.transform(x)
        return x, self.targets[index]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images as one float tensor (N, C, H, W) in [0, 1], and the labels (no transform)."""
        return self._tensor(self.images), torch.as_tensor(self.targets)


def read_idx(path: str | os.PathLike, *, sha256: str | None = None) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzipped or not; optionally check its content's SHA-256.

    Examples
    --------
    >>> import gzip, struct, tempfile, pathlib, numpy as np
    >>> from tlhelpers.data import read_idx
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.gz"
    >>> _ = p.write_bytes(gzip.compress(struct.pack(">HBBI", 0, 8, 1, 3) + bytes([1, 2, 3])))
    >>> read_idx(p).tolist()
    [1, 2, 3]
    """
    import gzip
    import hashlib
    import struct
    import zlib

    path = Path(path)
    try:
        with (gzip.open(path) if path.suffix == ".gz" else open(path, "rb")) as f:
            raw = f.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ValueError(f"cannot read IDX file {path}: corrupt or truncated ({type(exc).__name__}: {exc}); "
                         "delete it and get it again") from exc
    if sha256 is not None and hashlib.sha256(raw).hexdigest() != sha256:
        raise ValueError(f"checksum mismatch for the content of {path}: the file differs from the "
                         f"published dataset; delete it and get it again")
    if len(raw) < 4 or raw[:2] != b"\0\0":
        raise ValueError(f"{path} is not an IDX file (it starts with {raw[:4]!r}, not 00 00 <type> <ndim>)")
    _, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if dtype != 8:
        raise ValueError(f"{path}: only uint8 IDX files are supported (type code {dtype:#x})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes); delete it and get it again")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"{path}: the header says shape {shape} ({int(np.prod(shape, dtype=np.int64))} "
                         f"values) but the file holds {len(raw) - header}; it is truncated or damaged, "
                         "delete it and get it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()
