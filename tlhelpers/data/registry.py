"""The dataset registry: what each dataset is, where its files come from, and how they are checked.

A dataset is found in this order:

1. the user's cache, ``$TLHELPERS_CACHE/datasets/<folder>`` (default
   ``~/.cache/tlhelpers/datasets``);
2. mirror directories named by ``TLHELPERS_DATA_MIRROR`` (``os.pathsep``
   separated), then Debian's ``/usr/share/datasets``, laid out as the public
   source lays the files out;
3. a download from the public source into the cache: written atomically,
   extracted safely, checked file by file.

A copy that is incomplete or damaged (marker missing, a file missing or of the
wrong size, content that differs from the source) is skipped with its problem
noted, and the next place is tried; when no place has a good copy the error
lists every problem found and what to do about each.

How copies are checked
----------------------
Registered datasets ship a *manifest* (``manifests/<folder>.txt``: sha256,
size and path of every file), pinned by the entry's ``digest``
(:func:`tlhelpers.io.tree_digest` of those files).

- Every call checks the marker and every file's size (a few ms).
- The first use of a copy hashes every file; the result is recorded in a
  stamp file in the user cache (``datasets/.verified/``; never in a mirror).
  Later calls re-hash only files whose size or modification time changed
  since, so a cached file rewritten with flipped bits is caught cheaply.
- ``dataset_dir(name, verify=True)`` re-hashes every file now, which also
  catches silent disk corruption that left the modification time alone.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from torch.utils.data import Dataset

from .. import settings
from ..io import (
    MIRROR_NOTES,
    atomic_write,
    digest_of_hashes,
    download,
    move_into_place,
    safe_extract,
    sha256_file,
)

MANIFEST_DIR = Path(__file__).parent / "manifests"


class DatasetNotFoundError(FileNotFoundError):
    """Raised when no good copy of a dataset is in the cache or a mirror and none can be downloaded."""


class UnknownDatasetError(KeyError):
    """Raised for a name that is not in the registry (a ``KeyError`` with a readable message)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Source:
    """One file of a dataset's public source.

    ``sha256`` pins the downloaded file where it is an unchanged copy of the
    mirror's file (or the source publishes it); archives whose bytes are not
    stable (GitHub's generated zips) leave it ``None`` and rely on the
    per-file manifest checked after extraction.
    """

    url: str
    sha256: str | None = None  # of the downloaded file
    extract: bool = True       # zip/tar archives are extracted into the dataset folder
    subdir: str = ""           # take only this folder of the archive (e.g. GitHub's "<repo>-<commit>")
    dest: str = ""             # where it goes inside the dataset folder (file name or folder)


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
    digest: str | None = None  # tlhelpers.io.tree_digest of the folder's files (pins the manifest)
    splits: tuple[str, ...] = ()
    loader: Callable[..., Dataset] | None = field(default=None, repr=False, compare=False)
    source_note: str = ""     # why sources are empty or differ from the mirror; other ways to get it


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


def _looks_like_path(name: str) -> bool:
    return any(sep in name for sep in ("/", "\\", os.sep)) or name.startswith(("~", ".")) or Path(name).is_dir()


def dataset_info(name: str) -> DatasetInfo:
    """Return the registry entry for ``name``; unknown names list the known ones.

    A folder path instead of a name gets pointed at :class:`tlhelpers.data.ImageFolder`.

    Raises
    ------
    UnknownDatasetError
        A ``KeyError`` naming the known datasets (and the closest match).

    Examples
    --------
    >>> from tlhelpers.data import dataset_info
    >>> dataset_info("hymenoptera").licence.split(";")[0]
    'none stated (a small ImageNet subset)'
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    if _looks_like_path(str(name)):
        raise UnknownDatasetError(
            f"{name!r} looks like a folder, not a registered dataset name; for your own images use "
            f"data.ImageFolder({str(name)!r}, ...) with one sub-folder per class (point it at the "
            f"split folder, e.g. '.../train'), or data.load_dataset with one of: {', '.join(list_datasets())}")
    close = difflib.get_close_matches(str(name), list_datasets(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UnknownDatasetError(f"unknown dataset {name!r}{hint}; known datasets: {', '.join(list_datasets())}")


# --------------------------------------------------------------------------- manifests


def make_manifest(folder: str | os.PathLike) -> str:
    """The manifest text of a folder: one ``sha256 size path`` line per file, sorted by path.

    This is how ``manifests/<folder>.txt`` are made from a verified copy
    (a mirror's ``MANIFEST.txt`` and ``SHA256SUMS`` are left out).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from tlhelpers.data import make_manifest
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a.txt").write_text("x")
    >>> make_manifest(d).split()[1:]
    ['1', 'a.txt']
    """
    root = Path(folder)
    rows = [(sha256_file(root / rel), (root / rel).stat().st_size, rel) for rel in _files(root)]
    return "".join(f"{h} {n} {rel}\n" for h, n, rel in rows)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.name not in MIRROR_NOTES)


@lru_cache(maxsize=None)
def _read_manifest(folder: str, digest: str | None) -> dict[str, tuple[int, str]] | None:
    path = MANIFEST_DIR / f"{folder}.txt"
    if digest is None or not path.is_file():
        return None
    entries = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            sha, size, rel = line.split(" ", 2)
            entries[rel] = (int(size), sha)
    if digest_of_hashes({rel: sha for rel, (_, sha) in entries.items()}) != digest:
        return None  # a manifest for another version of the folder: fall back to the digest alone
    return entries


def _manifest(info: DatasetInfo) -> dict[str, tuple[int, str]] | None:
    return _read_manifest(info.folder, info.digest)


# --------------------------------------------------------------------------- checking a copy


def _stamp_path(stamps: Path, info: DatasetInfo, folder: Path) -> Path:
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    return stamps / f"{info.folder}-{key}.json"


def _quick_problem(info: DatasetInfo, folder: Path) -> str | None:
    """Marker and file sizes: cheap enough for every call."""
    if not (folder / info.marker).exists():
        return (f"{folder} exists but has no {info.marker!r}: the copy is incomplete or laid out "
                f"differently from the source (expected the layout of {_source_text(info)})")
    manifest = _manifest(info)
    if manifest is None:
        return None
    bad = []
    for rel, (size, _) in manifest.items():
        try:
            got = (folder / rel).stat().st_size
        except OSError:
            bad.append(f"{rel} (missing)")
            continue
        if got != size:
            bad.append(f"{rel} ({got} bytes, expected {size}: truncated or replaced)")
    if bad:
        return (f"{folder}: {len(bad)} of {len(manifest)} file(s) missing or of the wrong size: "
                + "; ".join(bad[:5]) + (" ..." if len(bad) > 5 else ""))
    return None


def _content_problem(info: DatasetInfo, folder: Path, stamp: Path | None, full: bool) -> str | None:
    """Content hashes against the manifest (or the digest), re-using a stamp's hashes when allowed."""
    if info.digest is None:
        return None
    manifest = _manifest(info)
    rels = sorted(manifest) if manifest is not None else _files(folder)
    old: dict = {}
    if stamp is not None and not full:
        with contextlib.suppress(OSError, ValueError):
            recorded = json.loads(stamp.read_text())
            if recorded.get("digest") == info.digest:
                old = recorded.get("files", {})
    stats = {rel: (folder / rel).stat() for rel in rels}
    shas, rehashed = {}, bool(set(old) - set(rels))
    for rel in rels:
        st, prev = stats[rel], old.get(rel)
        if prev is not None and prev[:2] == [st.st_size, st.st_mtime_ns]:
            shas[rel] = prev[2]
        else:
            shas[rel], rehashed = sha256_file(folder / rel), True
    if manifest is not None:
        bad = [rel for rel in rels if shas[rel] != manifest[rel][1]]
        if bad:
            return (f"{folder}: checksum mismatch, the content of {len(bad)} file(s) differs from the "
                    f"source (same size, different bytes): " + ", ".join(bad[:5])
                    + (" ..." if len(bad) > 5 else ""))
    elif digest_of_hashes(shas) != info.digest:
        return (f"{folder}: checksum mismatch for dataset {info.name!r}: expected {info.digest}, "
                f"got {digest_of_hashes(shas)}; the files differ from the source")
    if stamp is not None and rehashed:
        record = {"digest": info.digest, "folder": str(folder.resolve()),
                  "files": {rel: [stats[rel].st_size, stats[rel].st_mtime_ns, shas[rel]] for rel in rels}}
        with contextlib.suppress(OSError):  # a read-only cache only costs a re-hash next time
            with atomic_write(stamp, mode="w") as f:
                json.dump(record, f)
    return None


def _problem(info: DatasetInfo, folder: Path, stamps: Path | None, full: bool) -> str | None:
    return _quick_problem(info, folder) or _content_problem(
        info, folder, _stamp_path(stamps, info, folder) if stamps is not None else None, full)


def _what_to_do(folder: Path, in_cache: bool) -> str:
    if in_cache:
        return f"delete {folder} to download it again"
    return (f"repair this mirror copy (`cd {folder} && sha256sum -c SHA256SUMS` lists damaged files) "
            f"or remove its folder from {settings.MIRROR_ENV}")


def _find_local(info: DatasetInfo, cache: Path, mirrors: Sequence[Path], full: bool,
                problems: list[str]) -> Path | None:
    """The first good copy in the cache, then each mirror; problems of the others go to ``problems``."""
    stamps = cache / ".verified"
    for base in [cache, *mirrors]:
        candidate = base / info.folder
        try:
            present = candidate.is_dir() and any(candidate.iterdir())
        except OSError:
            present = False
        if not present:
            continue
        try:
            problem = _problem(info, candidate, stamps, full)
        except OSError as exc:
            problem = f"{candidate}: cannot be read ({exc})"
        if problem is None:
            return candidate
        problems.append(f"{problem}; {_what_to_do(candidate, base == cache)}")
    return None


def _source_text(info: DatasetInfo) -> str:
    if not info.sources:
        return info.homepage or "the dataset's homepage"
    more = f" (and {len(info.sources) - 1} more file(s))" if len(info.sources) > 1 else ""
    return info.sources[0].url + more


def dataset_dir(name: str, *, download_if_missing: bool = True, verify: bool = False,
                cache: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Return the folder holding a good copy of dataset ``name``: cache, then mirrors, then download.

    Parameters
    ----------
    name : str
        A registered dataset name (see :func:`list_datasets`).
    download_if_missing : bool
        Download from the public source when no good local copy exists.
    verify : bool
        ``False`` (default): check the marker and every file's size on each
        call, and every file's content once per copy (recorded in the user
        cache; files whose size or modification time changed since are
        hashed again). ``True``: hash every file now, whatever was recorded.
        Downloads are always checked in full.
    cache : path, optional
        The cache root; default ``tlhelpers.settings.cache_dir() / "datasets"``.
    progress : bool
        Show a download progress bar.

    Raises
    ------
    DatasetNotFoundError
        No good local copy and no download possible; the message lists every
        damaged copy with what to do, the URL, ``TLHELPERS_DATA_MIRROR`` and
        any other way to get the files.

    Examples
    --------
    >>> from tlhelpers.data import dataset_dir
    >>> dataset_dir("hymenoptera").name  # doctest: +SKIP
    'hymenoptera_data'
    """
    info = dataset_info(name)
    cache_root = Path(cache) if cache is not None else settings.cache_dir() / "datasets"
    problems: list[str] = []
    local = _find_local(info, cache_root, settings.mirror_dirs(), verify, problems)
    if problems and (local is not None or (download_if_missing and info.sources and not settings.offline())):
        warnings.warn(f"dataset {name!r}: skipped damaged or incomplete copies: " + " | ".join(problems)
                      + f"; using {local or 'a new download'}", stacklevel=2)
    if local is not None:
        return local
    mirror_value = os.environ.get(settings.MIRROR_ENV) or "unset"
    where = (f"no good copy in the cache ({cache_root / info.folder}) or a mirror "
             f"({settings.MIRROR_ENV}={mirror_value})")
    if problems:
        where += " [" + " | ".join(problems) + "]"
    url = _source_text(info)
    extra = f"; {info.source_note}" if info.source_note else ""
    mirror_hint = f"set {settings.MIRROR_ENV} to a folder containing {info.folder + '/'!r}"
    if not info.sources:
        raise DatasetNotFoundError(
            f"dataset {name!r}: {where}, and it has no direct-download source. To get it: {mirror_hint} "
            f"(about the data: {url}){extra}")
    if not download_if_missing or settings.offline():
        reason = "downloads are off" if not download_if_missing else (
            f"{settings.OFFLINE_ENV} (or HF_HUB_OFFLINE) forbids downloads")
        raise DatasetNotFoundError(
            f"dataset {name!r}: {where}, and {reason}. To get it: {mirror_hint}, or connect to the "
            f"internet to download it from {url}{extra}")
    try:
        return _download(info, cache_root, progress)
    except (OSError, ValueError) as exc:
        raise DatasetNotFoundError(
            f"dataset {name!r}: {where}, and downloading it from {url} failed ({exc}); "
            f"set {settings.MIRROR_ENV} to a folder containing {info.folder + '/'!r}, "
            f"or retry when online{extra}") from exc


def _merge_into(src: Path, dst: Path) -> None:
    for p in sorted(src.rglob("*")):
        if p.is_file() and not p.is_symlink():
            target = dst / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(p, target)


def _download(info: DatasetInfo, cache_root: Path, progress: bool) -> Path:
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache_root, prefix=f".{info.folder}.partial-"))
    try:
        for i, src in enumerate(info.sources):
            fname = src.url.rstrip("/").rsplit("/", 1)[-1]
            archive = download(src.url, staging / ".download" / f"{i}-{fname}", sha256=src.sha256,
                               progress=progress)
            if src.extract:
                out = safe_extract(archive, staging / ".extract" / str(i))
                base = out / src.subdir if src.subdir else out
                if not base.is_dir():
                    raise ValueError(f"{src.url} has no folder {src.subdir!r}; the source changed")
                _merge_into(base, staging / src.dest if src.dest else staging)
            else:
                target = staging / (src.dest or fname)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(archive, target)
        for tmp in (".download", ".extract"):
            shutil.rmtree(staging / tmp, ignore_errors=True)
        manifest = _manifest(info)
        if manifest is not None:  # keep exactly the files the registry lists, and their folders
            for p in sorted(staging.rglob("*"), reverse=True):  # children before their folder
                rel = p.relative_to(staging).as_posix()
                if p.is_dir() and not p.is_symlink():
                    if not any(p.iterdir()):
                        p.rmdir()
                elif rel not in manifest:
                    p.unlink()
        problem = _problem(info, staging, None, full=True)
        if problem is not None:
            raise ValueError(f"the downloaded files are not the registered dataset: {problem}")
        final = cache_root / info.folder
        return move_into_place(staging, final, is_complete=lambda d: _problem(info, d, None, full=False) is None)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_dataset(name: str, split: str = "train", *, transform: Callable | None = None,
                 **kwargs) -> Dataset:
    """Load a split of a registered dataset as a plain ``torch.utils.data.Dataset``.

    For your own images use :class:`tlhelpers.data.ImageFolder` instead; a
    folder path given here says so.

    Parameters
    ----------
    name : str
        A registered dataset name.
    split : str
        One of the dataset's ``splits``.
    transform : callable, optional
        Applied to each input (a ``PIL.Image`` for image datasets). For
        segmentation datasets (``cwfid``) it is called as ``transform(image, mask)``
        and returns both, as ``torchvision.transforms.v2`` transforms do.
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
