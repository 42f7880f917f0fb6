"""Image files: decoding any mode to RGB, and folders of images checked when they are read.

:class:`ImageFolder` checks every file when it is built: files that are not
images or cannot be decoded are skipped, listed in ``dataset.skipped`` and
reported in a warning, so nothing fails later inside a DataLoader worker.
:func:`load_image` turns every PIL mode into 8-bit RGB the same way
(16-bit and float images are scaled, not clipped; EXIF orientation applied).
"""

from __future__ import annotations

import copy
import os
import shutil
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from torch.utils.data import Dataset

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SPLIT_FOLDER_NAMES = frozenset({"train", "training", "val", "valid", "validation", "test", "testing", "dev"})
_IGNORED_FOLDERS = frozenset({"__MACOSX"})  # resource forks in zips made on macOS


class ImageTooLargeError(ValueError):
    """Raised for an image with more pixels than allowed (a decompression bomb or a huge scan)."""


def _hidden(name: str) -> bool:
    return name.startswith(".") or name in _IGNORED_FOLDERS


def _gray_to_uint8(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer and float grayscale to 8-bit "L", scaled rather than clipped.

    ``I;16*`` and ``I`` are read as 0..65535 (16-bit PNG/TIFF) and divided by
    257; ``F`` images in [0, 1] are multiplied by 255, those in [0, 255] kept,
    others stretched from their own minimum and maximum (NaN -> 0).
    """
    a = np.asarray(img).astype(np.float64)
    if img.mode == "F":
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo >= 0 and hi <= 1.0:
            a = a * 255
        elif lo < 0 or hi > 255:
            a = (a - lo) / (hi - lo or 1.0) * 255
    else:
        a = a / 257
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")


def _rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparency is composited onto white."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I") or img.mode == "F":
        return _gray_to_uint8(img).convert("RGB")
    if img.mode == "P" and "transparency" in img.info or img.mode in ("PA", "RGBa"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV, RGBX


def _check_size(img: Image.Image, path, max_pixels: int) -> None:
    w, h = img.size
    if w * h > max_pixels:
        raise ImageTooLargeError(
            f"image {path} has {w}x{h} = {w * h:,} pixels, more than the limit of {max_pixels:,} "
            "(a decompression bomb, or a huge scan); downscale the file, or pass a larger max_pixels=")


def _open(path, max_pixels: int | None) -> Image.Image:
    """``Image.open`` with PIL's decompression-bomb warning turned into our error."""
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore" if limit is None or limit > (Image.MAX_IMAGE_PIXELS or limit)
                              else "error", Image.DecompressionBombWarning)
        try:
            img = Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLargeError(
                f"image {path} is larger than PIL allows ({exc}); downscale the file, or raise "
                "PIL.Image.MAX_IMAGE_PIXELS and pass max_pixels= if you trust it") from exc
    try:
        if limit is not None:
            _check_size(img, path, limit)
    except BaseException:
        img.close()
        raise
    return img


def load_image(path: str | os.PathLike, *, max_pixels: int | None = None) -> Image.Image:
    """Open an image file fully decoded as 8-bit RGB, upright, with the path in any error.

    Every PIL mode is converted: grayscale, palette, CMYK, YCbCr, LAB; RGBA
    and LA are composited onto white; 16-bit (``I;16``, ``I``) and float
    (``F``) images are scaled to 0..255 rather than clipped. The EXIF
    orientation tag is applied (a phone photo taken sideways comes out upright).

    Parameters
    ----------
    path : path
        The image file.
    max_pixels : int, optional
        Refuse images with more pixels; default ``PIL.Image.MAX_IMAGE_PIXELS``
        (PIL's decompression-bomb threshold, about 89 million), whose warning
        becomes this error. Above twice PIL's threshold PIL itself refuses:
        raise ``PIL.Image.MAX_IMAGE_PIXELS`` too for such files.

    Raises
    ------
    ImageTooLargeError
        More pixels than ``max_pixels`` (a ``ValueError``), found from the header.
    OSError
        The file is missing, empty, truncated, corrupt or not an image.

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
        with _open(path, max_pixels) as img:
            img.load()
            if img.getexif().get(0x0112, 1) != 1:  # EXIF orientation
                img = ImageOps.exif_transpose(img)
            return _rgb(img)
    except ImageTooLargeError:
        raise
    except Exception as exc:  # PIL raises many types for bad files
        raise OSError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from exc


class ImageFolder(Dataset):
    """Images in ``root/<class>/<file>``, checked when the dataset is built.

    Parameters
    ----------
    root : path
        Folder with one sub-folder per class (a split folder such as
        ``data/train``, not ``data`` itself: that is refused with a hint).
    transform : callable, optional
        Applied to each RGB ``PIL.Image``.
    extensions : tuple of str
        File endings read as images; other files are skipped and reported
        (like torchvision, ``.gif`` is not read by default).
    check : {"decode", "header", "none"}
        ``"decode"`` decodes every image once exactly as ``__getitem__`` will,
        so corrupt, truncated and oversized files are found now (a few ms an
        image); ``"header"`` only reads headers.
    allow_empty : bool
        Allow class folders without any readable image.
    warn : bool
        Warn about skipped files (those in ``ignore_extensions`` excepted).
    classes : sequence of str, optional
        The class names, in label order. Give the same list to every split so
        that labels agree; a class folder missing from ``root``, or a folder
        not in the list, is an error. Default: the sub-folders, sorted.
    split : str, optional
        Read ``root/split`` (``ImageFolder("data", split="val")``).
    ignore_extensions : tuple of str
        File endings expected beside the images (masks, notes): skipped and
        listed in ``skipped`` without a warning.
    max_pixels : int, optional
        See :func:`load_image`.

    Hidden files and folders (names starting with ``.``, such as
    ``.ipynb_checkpoints``) and ``__MACOSX`` are ignored at every depth;
    symbolic links to folders below a class folder are not followed.

    Attributes
    ----------
    classes : list of str
    class_to_idx : dict of str to int
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
    >>> ds = ImageFolder(root, classes=["ants", "bees"], ignore_extensions=(".txt",))
    >>> ds.classes, len(ds), len(ds.skipped)
    (['ants', 'bees'], 2, 1)
    """

    def __init__(self, root: str | os.PathLike, *, transform: Callable | None = None,
                 extensions: tuple[str, ...] = IMAGE_EXTENSIONS, check: str = "decode",
                 allow_empty: bool = False, warn: bool = True, classes: Sequence[str] | None = None,
                 split: str | None = None, ignore_extensions: tuple[str, ...] = (),
                 max_pixels: int | None = None) -> None:
        if check not in {"decode", "header", "none"}:
            raise ValueError(f"check must be 'decode', 'header' or 'none', not {check!r}")
        self.root = Path(root) if split is None else Path(root) / split
        self.transform, self.max_pixels = transform, max_pixels
        extensions = tuple(e.lower() for e in extensions)
        ignore_extensions = tuple(e.lower() for e in ignore_extensions)
        if not self.root.is_dir():
            hint = ""
            if split is not None and Path(root).is_dir():
                hint = f"; {root} holds {sorted(p.name for p in Path(root).iterdir() if p.is_dir())}"
            raise FileNotFoundError(f"image folder {self.root} does not exist{hint}")
        entries = sorted(self.root.iterdir())
        class_dirs = [p for p in entries if p.is_dir() and not _hidden(p.name)]
        if classes is None or not set(classes) & {p.name for p in class_dirs}:
            self._refuse_split_parent([p.name for p in class_dirs], split)
        if not class_dirs:
            loose = [p.name for p in entries if p.is_file() and p.suffix.lower() in extensions]
            raise ValueError(
                f"expected one sub-folder per class in {self.root} (root/<class>/<image>), "
                f"found no sub-folders and {len(loose)} image file(s) directly in it")
        if classes is not None:
            class_dirs = self._match_classes(list(classes), {p.name: p for p in class_dirs})
        self.classes = [p.name for p in class_dirs]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples: list[tuple[str, int]] = []
        self.skipped: list[tuple[str, str]] = []
        reported = self._scan(class_dirs, extensions, ignore_extensions, check)
        counts = np.bincount([t for _, t in self.samples], minlength=len(self.classes))
        empty = [c for c, n in zip(self.classes, counts, strict=True) if n == 0]
        if empty and not allow_empty:
            raise ValueError(
                f"class folder(s) {empty} in {self.root} hold no readable image; add images, "
                f"remove the folder(s), or pass allow_empty=True (skipped: {len(self.skipped)})")
        self.targets = [t for _, t in self.samples]
        if reported and warn:
            shown = "; ".join(f"{Path(p).relative_to(self.root)} ({r})" for p, r in reported[:10])
            warnings.warn(f"{self.root}: skipped {len(reported)} file(s) that are not readable images: "
                          f"{shown}{' ...' if len(reported) > 10 else ''}; dataset.skipped lists them all. "
                          "Fix or delete them, or pass warn=False", stacklevel=2)

    def _scan(self, class_dirs: list[Path], extensions: tuple[str, ...], ignore: tuple[str, ...],
              check: str) -> list[tuple[str, str]]:
        """Fill ``samples`` and ``skipped``; return the skipped files worth a warning."""
        reported = []
        for idx, cdir in enumerate(class_dirs):
            for p in _walk(cdir):
                quiet = p.suffix.lower() in ignore
                if quiet:
                    reason = (f"not an image extension ({p.suffix})" if p.suffix.lower() not in extensions
                              else f"ignored ({p.suffix} is in ignore_extensions)")
                else:
                    reason = self._problem(p, extensions, check, self.max_pixels)
                if reason:
                    self.skipped.append((str(p), reason))
                    if not quiet:
                        reported.append((str(p), reason))
                else:
                    self.samples.append((str(p), idx))
        return reported

    def _refuse_split_parent(self, names: list[str], split: str | None) -> None:
        if split is None and names and all(n.lower() in SPLIT_FOLDER_NAMES for n in names):
            raise ValueError(
                f"{self.root} holds split folders {names}, not one folder per class: point ImageFolder "
                f"at one split, e.g. ImageFolder({str(self.root / names[0])!r}) or "
                f"ImageFolder({str(self.root)!r}, split={names[0]!r}), and pass the same classes= to each split")

    def _match_classes(self, classes: list[str], found: dict[str, Path]) -> list[Path]:
        if len(set(classes)) != len(classes) or not classes:
            raise ValueError(f"classes must be distinct names, got {classes}")
        missing = [c for c in classes if c not in found]
        extra = sorted(set(found) - set(classes))
        if missing:
            raise FileNotFoundError(
                f"class folder(s) {missing} missing in {self.root} (classes={classes}, found {sorted(found)}); "
                "every split needs a folder per class: add the folder, or check the spelling")
        if extra:
            raise ValueError(
                f"{self.root} has folder(s) {extra} that are not in classes={classes}; move them out, "
                "or add them to classes (in the same order for every split)")
        return [found[c] for c in classes]

    @staticmethod
    def _problem(path: Path, extensions: tuple[str, ...], check: str, max_pixels: int | None) -> str | None:
        if path.suffix.lower() not in extensions:
            return f"not an image extension ({path.suffix or 'none'})"
        if not path.is_file():
            return "not a regular file (a FIFO, device or broken link)"
        if check == "none":
            return None
        try:
            if path.stat().st_size == 0:
                return "empty file (0 bytes)"
            if check == "decode":
                load_image(path, max_pixels=max_pixels)
            else:
                with _open(path, max_pixels) as img:
                    img.verify()
        except Exception as exc:
            return f"cannot be decoded: {type(exc).__name__}: {exc}"
        return None

    def with_transform(self, transform: Callable | None) -> ImageFolder:
        """The same images and labels with another ``transform``, without scanning or decoding again.

        Build a folder once and take one view per transform: augmented for
        training, plain for validation, over the indices of one split.

        Examples
        --------
        >>> from tlhelpers.data import ImageFolder
        >>> import pathlib, tempfile
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for name in ["ants/1.png", "bees/1.png"]:
        ...     (root / name).parent.mkdir()
        ...     Image.new("RGB", (8, 8)).save(root / name)
        >>> photos = ImageFolder(root)
        >>> small = photos.with_transform(lambda img: img.resize((2, 2)))
        >>> small[1][0].size, small.targets == photos.targets, photos.transform is None
        ((2, 2), True, True)
        """
        view = copy.copy(self)
        view.transform = transform
        return view

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        img = load_image(path, max_pixels=self.max_pixels)
        if self.transform is not None:
            img = self.transform(img)
        return img, target

    def __repr__(self) -> str:
        return (f"ImageFolder(root={str(self.root)!r}, classes={self.classes}, n={len(self)}, "
                f"skipped={len(self.skipped)})")


def _walk(folder: Path) -> list[Path]:
    """Files below ``folder``, sorted, without hidden ones and without following folder links."""
    out = []
    for here, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not _hidden(d))
        out.extend(Path(here) / f for f in files if not _hidden(f))
    return sorted(out)


def sample_folder(dataset: ImageFolder, dest: str | os.PathLike, *, classes: Sequence[str] | None = None,
                  per_class: int = 12, groups: Sequence | None = None, seed: int = 0) -> Path:
    """Copy a few images of each class into ``dest/<class>/<file>``: a small folder to practise on.

    The book's "your own data" exercises run in CI on such a stand-in, built
    from a dataset it ships; a reader points the same code at a folder of
    their own instead. With ``groups`` (one id per image, e.g. the magnetic
    tiles' ``tile_ids``) at most one image of each group is taken, so the
    folder never shows the same object twice and cross-validation on it is
    honest.

    Parameters
    ----------
    dataset : ImageFolder
        Any dataset with ``samples`` (``(path, label)`` pairs) and ``classes``.
    dest : path
        A folder that does not exist yet, or an empty one; nothing is ever
        overwritten.
    classes : sequence of str, optional
        Class names to copy, in this order (default: all).
    per_class : int
        At most this many images per class (fewer when a class has fewer
        images, or fewer groups).
    groups : sequence, optional
        One group id per image of ``dataset``.
    seed : int
        Which images are drawn.

    Returns
    -------
    Path : ``dest``, ready for :class:`ImageFolder`.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> src = Path(tempfile.mkdtemp())
    >>> for cls in ["cat", "dog"]:
    ...     (src / cls).mkdir()
    ...     for i in range(5):
    ...         Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(src / cls / f"{i}.png")
    >>> out = sample_folder(ImageFolder(src), Path(tempfile.mkdtemp()) / "few", per_class=2)
    >>> sorted(len(list((out / c).iterdir())) for c in ["cat", "dog"])
    [2, 2]
    """
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise ValueError(f"per_class must be a positive whole number, not {per_class!r}")
    names = list(dataset.classes)
    wanted = names if classes is None else list(classes)
    unknown = [c for c in wanted if c not in names]
    if unknown:
        raise ValueError(f"unknown classes {unknown}; the dataset has {names}")
    paths = [Path(p) for p, _ in dataset.samples]
    labels = np.asarray([t for _, t in dataset.samples])
    if groups is not None:
        groups = np.asarray(groups)
        if len(groups) != len(paths):
            raise ValueError(f"groups has {len(groups)} entries for {len(paths)} images; give one per image")
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"{dest} exists and is not an empty folder; sample_folder never overwrites")
    rng = np.random.default_rng(seed)
    chosen = {}
    for cls in wanted:
        members = np.flatnonzero(labels == names.index(cls))
        if groups is None:
            picks = rng.permutation(members)[:per_class]
        else:  # one image from each of up to per_class groups
            picks = [rng.choice(members[groups[members] == g])
                     for g in rng.permutation(np.unique(groups[members]))[:per_class]]
        chosen[cls] = [paths[i] for i in picks]
        clash = len({p.name for p in chosen[cls]}) < len(chosen[cls])
        if clash:
            raise ValueError(f"two images of class {cls!r} share a file name; cannot copy both into one folder")
    for cls, files in chosen.items():
        (dest / cls).mkdir(parents=True, exist_ok=True)
        for p in files:
            shutil.copy2(p, dest / cls / p.name)
    return dest
