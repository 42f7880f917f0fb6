"""Files that are never half-written: atomic writes, checksums, downloads, safe extraction.

Everything the package saves (datasets, feature caches, checkpoints) goes
through :func:`atomic_write`, so an interrupted run leaves either the old file
or the new one, never a truncated one.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import lzma
import os
import posixpath
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import torch

MIRROR_NOTES = frozenset({"MANIFEST.txt", "SHA256SUMS"})  # a mirror's own notes, not dataset files


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` and move it into place on success.

    If the block raises (or the process is killed), ``path`` keeps its old
    content and the temporary file is removed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from tlhelpers.io import atomic_write
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_write(p, mode="w") as f:
    ...     _ = f.write("hello")
    >>> p.read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through :func:`atomic_write`.

    Examples
    --------
    >>> import tempfile, pathlib, torch
    >>> from tlhelpers.io import save_torch
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.pt"
    >>> save_torch({"x": torch.ones(2)}, p)
    >>> torch.load(p)["x"].tolist()
    [1.0, 1.0]
    """
    with atomic_write(path, mode="wb") as f:
        torch.save(obj, f)


def sha256_file(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from tlhelpers.io import sha256_file
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "e"; _ = p.write_bytes(b"")
    >>> sha256_file(p)[:16]
    'e3b0c44298fc1c14'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def tree_digest(root: str | os.PathLike, *, files: list[str] | None = None) -> str:
    """SHA-256 over a folder's files, as ``sha256sum`` lines sorted by path.

    This is the checksum the dataset registry stores for each dataset: it
    verifies every extracted file, in the cache, in a mirror or after a
    download alike.

    Parameters
    ----------
    root : path
        The folder.
    files : list of str, optional
        Relative POSIX paths to include; default every file below ``root``
        except ``MANIFEST.txt`` and ``SHA256SUMS`` (a mirror's own notes).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from tlhelpers.io import tree_digest
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a").write_bytes(b"x")
    >>> len(tree_digest(d))
    64
    """
    root = Path(root)
    if files is None:
        files = sorted(
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file() and p.name not in MIRROR_NOTES
        )
    return digest_of_hashes({rel: sha256_file(root / rel) for rel in files})


def digest_of_hashes(hashes: dict[str, str]) -> str:
    """:func:`tree_digest` from per-file SHA-256 hashes already known (``{relative path: hex}``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from tlhelpers.io import digest_of_hashes, sha256_file, tree_digest
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a").write_bytes(b"x")
    >>> digest_of_hashes({"a": sha256_file(d / "a")}) == tree_digest(d)
    True
    """
    lines = "".join(f"{hashes[rel]}  {rel}\n" for rel in sorted(hashes))
    return hashlib.sha256(lines.encode()).hexdigest()


def _content_length(headers: Any) -> int | None:
    """The Content-Length header as a non-negative int, or None when absent or malformed."""
    value = headers.get("Content-Length")
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if n >= 0 else None


def download(url: str, dest: str | os.PathLike, *, sha256: str | None = None,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically, resuming nothing half-done.

    The file is written to a temporary name beside ``dest`` and renamed only
    after the whole body arrived: the byte count must equal the server's
    ``Content-Length`` (when it sends one) and, when ``sha256`` is given, the
    checksum must match. Any failure, ``KeyboardInterrupt`` included, removes
    the temporary file, so an interrupted download never looks complete.

    Parameters
    ----------
    url : str
        ``https://``, ``http://`` or ``file://`` URL.
    dest : path
        Where the finished file goes (parent folders are created).
    sha256 : str, optional
        Expected hex SHA-256 of the file.
    progress : bool
        Show a ``tqdm`` progress bar.
    timeout : float
        Seconds to wait for the server on each read.

    Raises
    ------
    OSError
        The server could not be reached, or the body was shorter or longer
        than its ``Content-Length`` (the message gives both numbers).
    ValueError
        The checksum did not match.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from tlhelpers.io import download
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "src").write_bytes(b"abc")
    >>> download((d / "src").as_uri(), d / "out" / "copy", progress=False).read_bytes()
    b'abc'
    """
    import http.client

    from tqdm.auto import tqdm

    dest = Path(dest)
    h = hashlib.sha256()
    received = 0
    try:
        response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (registry URLs)
    except urllib.error.URLError as exc:
        raise OSError(f"cannot download {url}: {getattr(exc, 'reason', exc)}; check the URL and "
                      "your connection, or use a local copy (see TLHELPERS_DATA_MIRROR)") from exc
    with response:
        total = _content_length(response.headers)
        with atomic_write(dest, mode="wb") as f, tqdm(total=total, unit="B", unit_scale=True,
                                                  desc=dest.name, disable=not progress) as bar:
            try:
                while block := response.read(1 << 20):
                    f.write(block)
                    h.update(block)
                    received += len(block)
                    bar.update(len(block))
            except http.client.IncompleteRead as exc:
                received += len(exc.partial)
                total = total if total is not None else received + (exc.expected or 0)
            if total is not None and received != total:
                raise OSError(
                    f"download of {url} was cut short: received {received} of {total} bytes "
                    "(Content-Length); nothing was saved, try again")
            if sha256 is not None and h.hexdigest() != sha256:
                raise ValueError(
                    f"checksum mismatch for {url}: expected sha256 {sha256}, got {h.hexdigest()}; "
                    "the download was discarded, try again or report a changed source")
    return dest


_ARCHIVE_HINT = "the archive is damaged or hostile: delete it and download it again from its source"


def _check_member_name(archive: Path, name: str, target: Path) -> None:
    """Refuse absolute names, drive letters and ``..`` components (zip and tar alike)."""
    parts = name.replace("\\", "/").split("/")
    if (name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts
            or "\0" in name):
        raise ValueError(f"refusing to extract {archive}: member {name!r} would be written outside "
                         f"{target} (absolute path or '..'); {_ARCHIVE_HINT}")


def _check_zip(archive: Path, z: zipfile.ZipFile, target: Path) -> None:
    root = target.resolve()
    for info in z.infolist():
        _check_member_name(archive, info.filename, target)
        dest = (root / info.filename).resolve()
        if dest != root and root not in dest.parents:
            raise ValueError(f"refusing to extract {archive}: member {info.filename!r} would be "
                             f"written outside {target}; {_ARCHIVE_HINT}")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ValueError(f"refusing to extract {archive}: member {info.filename!r} is a symbolic "
                             f"link; dataset archives hold plain files only, {_ARCHIVE_HINT}")


def _check_tar(archive: Path, members: list[tarfile.TarInfo], target: Path) -> None:
    """Checks before anything is written; ``filter="data"`` then re-checks during extraction."""
    links: set[str] = set()
    regular: set[str] = set()
    for m in members:
        name = posixpath.normpath(m.name.rstrip("/")) if m.name.strip("/") else m.name
        _check_member_name(archive, m.name, target)
        parents = [posixpath.join(*name.split("/")[:i]) for i in range(1, name.count("/") + 1)]
        if any(p in links for p in parents):
            raise ValueError(f"refusing to extract {archive}: member {m.name!r} is written through "
                             f"a symbolic link of the archive; {_ARCHIVE_HINT}")
        if m.issym() or m.islnk():
            link = m.linkname.replace("\\", "/")
            if link.startswith("/") or ".." in link.split("/"):
                raise ValueError(f"refusing to extract {archive}: link {m.name!r} -> {m.linkname!r} "
                                 f"points outside {target} (absolute or '..'); {_ARCHIVE_HINT}")
            if m.islnk() and posixpath.normpath(link) not in regular:
                raise ValueError(f"refusing to extract {archive}: hard link {m.name!r} -> "
                                 f"{m.linkname!r} names no earlier file of the archive; {_ARCHIVE_HINT}")
            links.add(name)
        elif m.isreg():
            regular.add(name)
            links.discard(name)
        elif not m.isdir():
            raise ValueError(f"refusing to extract {archive}: member {m.name!r} is a device, FIFO or "
                             f"other special file; {_ARCHIVE_HINT}")


def _check_space(archive: Path, size: int, target: Path) -> None:
    """Refuse an archive whose declared content does not fit on the disk (a zip bomb, or a full disk)."""
    free = shutil.disk_usage(target).free
    if size > free:
        raise ValueError(f"refusing to extract {archive}: its members add up to {size:,} bytes but only "
                         f"{free:,} are free under {target}; free some space, or the archive is a "
                         "decompression bomb")


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Extract a zip or tar archive, refusing members that would land outside ``target``.

    Checked before anything is written: absolute paths, drive letters and
    ``..`` components (zip and tar), zip entries that are symbolic links, tar
    links that are absolute, climb with ``..``, or are written through, hard
    links to anything but an earlier file of the archive, device nodes or
    FIFOs, and content larger than the free disk space. Tar archives are then extracted with ``tarfile``'s ``"data"``
    filter (Python >= 3.10.12 / 3.11.4), which re-checks every member as it is
    written and drops setuid/setgid bits and ownership.

    Raises
    ------
    ValueError
        A hostile member (nothing of the archive is written), or a corrupt or
        truncated archive (the message names the file; partial output from
        this call is removed when ``target`` did not exist before).
    RuntimeError
        The running Python's ``tarfile`` has no ``data`` filter.

    Examples
    --------
    >>> import tempfile, pathlib, zipfile
    >>> from tlhelpers.io import safe_extract
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with zipfile.ZipFile(d / "a.zip", "w") as z:
    ...     z.writestr("data/x.txt", "hi")
    >>> (safe_extract(d / "a.zip", d / "out") / "data" / "x.txt").read_text()
    'hi'
    """
    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise FileNotFoundError(f"archive {archive} does not exist")
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                _check_zip(archive, z, target)
                _check_space(archive, sum(i.file_size for i in z.infolist()), target)
                z.extractall(target)
        elif tarfile.is_tarfile(archive):
            if not hasattr(tarfile, "data_filter"):
                raise RuntimeError(
                    f"cannot extract {archive} safely: this Python ({sys.version.split()[0]}) has no "
                    "tarfile 'data' filter; upgrade to Python >= 3.10.12, 3.11.4 or 3.12")
            with tarfile.open(archive) as t:
                members = t.getmembers()
                _check_tar(archive, members, target)
                _check_space(archive, sum(m.size for m in members if m.isreg()), target)
                t.extractall(target, members=members, filter="data")
        else:
            raise ValueError(f"{archive} is neither a zip nor a tar archive (corrupt, truncated or "
                             f"an error page?); {_ARCHIVE_HINT}")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError, zlib.error,
            lzma.LZMAError, gzip.BadGzipFile) as exc:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        if isinstance(exc, tarfile.FilterError):
            raise ValueError(f"refusing to extract {archive}: {exc} (outside {target}); "
                             f"{_ARCHIVE_HINT}") from exc
        raise ValueError(f"cannot extract {archive}: corrupt or truncated archive "
                         f"({type(exc).__name__}: {exc}); {_ARCHIVE_HINT}") from exc
    except BaseException:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def move_into_place(src: str | os.PathLike, dest: str | os.PathLike,
                    *, is_complete: Callable[[Path], bool] | None = None) -> Path:
    """Move a finished folder into place with one rename; safe when processes race.

    When ``dest`` already exists (another process got there first, even
    between our check and our rename), ``src`` is discarded and ``dest`` is
    returned, provided ``is_complete(dest)`` says the copy there is whole
    (default: any existing ``dest`` counts). An incomplete ``dest`` is moved
    aside and replaced by ``src``.

    Parameters
    ----------
    src : path
        The finished folder (on the same file system as ``dest``).
    dest : path
        Where it should end up.
    is_complete : callable, optional
        ``is_complete(path) -> bool`` for an existing destination.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from tlhelpers.io import move_into_place
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "s").mkdir(); (d / "s2").mkdir()
    >>> move_into_place(d / "s", d / "t").name
    't'
    >>> move_into_place(d / "s2", d / "t").name, (d / "s2").exists()
    ('t', False)
    """
    src, dest = Path(src), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            if not dest.exists():
                os.replace(src, dest)  # atomic; fails if a non-empty dest appeared meanwhile
                return dest
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not dest.exists():
                raise
        if is_complete is None or is_complete(dest):
            shutil.rmtree(src, ignore_errors=True)
            return dest
        aside = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.incomplete-"))
        with contextlib.suppress(OSError):
            os.replace(dest, aside / dest.name)
        shutil.rmtree(aside, ignore_errors=True)
    raise OSError(f"cannot move {src} to {dest}: the destination keeps changing and is incomplete; "
                  f"remove {dest} and try again")
