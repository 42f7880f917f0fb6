"""Files that are never half-written: atomic writes, checksums, downloads, safe extraction.

Everything the package saves (datasets, feature caches, checkpoints) goes
through :func:`atomic_write`, so an interrupted run leaves either the old file
or the new one, never a truncated one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` and move it into place on success.

    If the block raises (or the process is killed), ``path`` keeps its old
    content and the temporary file is removed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from tlhelpers.io import atomic_write
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_write(p, "w") as f:
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
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
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


def tree_digest(root: str | os.PathLike, files: list[str] | None = None) -> str:
    """SHA-256 over a folder's files, as ``sha256sum`` lines sorted by path.

    This is the checksum the dataset registry stores for datasets whose
    archive checksum is not published: it verifies every extracted file, in
    the cache, in a mirror or after a download alike.

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
            if p.is_file() and p.name not in {"MANIFEST.txt", "SHA256SUMS"}
        )
    lines = "".join(f"{sha256_file(root / rel)}  {rel}\n" for rel in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def download(url: str, dest: str | os.PathLike, sha256: str | None = None,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically, resuming nothing half-done.

    The file is written to a temporary name and renamed only after the whole
    body arrived and, when ``sha256`` is given, its checksum matched. An
    interrupted download therefore never leaves a file that looks complete.

    Raises
    ------
    ValueError
        When the checksum does not match (the partial file is removed).

    Examples
    --------
    >>> from tlhelpers.io import download
    >>> download  # doctest: +ELLIPSIS
    <function download at ...>
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    h = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (https source URLs)
        total = int(response.headers.get("Content-Length") or 0) or None
        with atomic_write(dest, "wb") as f, tqdm(total=total, unit="B", unit_scale=True,
                                                  desc=dest.name, disable=not progress) as bar:
            while block := response.read(1 << 20):
                f.write(block)
                h.update(block)
                bar.update(len(block))
            if sha256 is not None and h.hexdigest() != sha256:
                raise ValueError(
                    f"checksum mismatch for {url}: expected sha256 {sha256}, got {h.hexdigest()}; "
                    "the download was discarded, try again or report a changed source")
    return dest


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Extract a zip or tar archive, refusing members that would land outside ``target``.

    Absolute paths, ``..`` components and links pointing outside the target
    raise ``ValueError`` before anything is written.

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
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()

    def check(name: str) -> None:
        dest = (root / name).resolve()
        if name.startswith(("/", "\\")) or (dest != root and root not in dest.parents):
            raise ValueError(f"refusing to extract {archive.name}: member {name!r} "
                             f"would be written outside {target}")

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                check(name)
            z.extractall(target)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            for m in t.getmembers():
                check(m.name)
                if m.issym() or m.islnk():
                    check(os.path.join(os.path.dirname(m.name), m.linkname))
            t.extractall(target)  # noqa: S202 (members checked above)
    else:
        raise ValueError(f"{archive} is neither a zip nor a tar archive")
    return target


def move_into_place(src: Path, dest: Path) -> Path:
    """Move a finished folder into place with one rename (replacing nothing).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from tlhelpers.io import move_into_place
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "s").mkdir()
    >>> move_into_place(d / "s", d / "t").name
    't'
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        shutil.rmtree(src, ignore_errors=True)
        return dest
    os.replace(src, dest)
    return dest
