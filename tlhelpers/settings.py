"""One place for paths, devices, seeds and environment variables.

Every other module reads its defaults from here, so a reader can see at a
glance which environment variables change the package's behaviour:

``TLHELPERS_CACHE``
    Where downloaded datasets and computed features are kept
    (default ``~/.cache/tlhelpers``).
``TLHELPERS_DATA_MIRROR``
    One or more directories (``os.pathsep``-separated) holding already
    downloaded datasets, laid out as their public source lays them out. CI
    points it at ``../shared/datasets``. Debian's dataset packages
    (``/usr/share/datasets``, e.g. ``dataset-fashion-mnist``) are searched after them.
``TLHELPERS_OFFLINE``
    ``1`` forbids every network access; loaders then stop with an error that
    names what is missing and where it would have come from.
``TLHELPERS_MIXED_PRECISION``
    ``0`` keeps :func:`mixed_precision` in float32 everywhere; ``1`` asks for
    bfloat16 even where the hardware has no native bfloat16 arithmetic (slow).
    Unset: bfloat16 where it is native, float32 elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path

import numpy as np
import torch

CACHE_ENV = "TLHELPERS_CACHE"
MIRROR_ENV = "TLHELPERS_DATA_MIRROR"
OFFLINE_ENV = "TLHELPERS_OFFLINE"
PRECISION_ENV = "TLHELPERS_MIXED_PRECISION"
SYSTEM_DATA_DIRS = (Path("/usr/share/datasets"),)  # Debian's dataset-* packages


def cache_dir() -> Path:
    """Return the root of the user's cache directory.

    Examples
    --------
    >>> import os
    >>> from tlhelpers.settings import cache_dir
    >>> saved = os.environ.pop("TLHELPERS_CACHE", None)
    >>> cache_dir().name
    'tlhelpers'
    >>> os.environ["TLHELPERS_CACHE"] = "/tmp/my-cache"; cache_dir().as_posix()
    '/tmp/my-cache'
    >>> if saved is None: del os.environ["TLHELPERS_CACHE"]
    ... else: os.environ["TLHELPERS_CACHE"] = saved
    """
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tlhelpers"


def mirror_dirs() -> list[Path]:
    """Return the mirror directories named by ``TLHELPERS_DATA_MIRROR``, then system data folders.

    Examples
    --------
    >>> import os
    >>> from tlhelpers.settings import mirror_dirs
    >>> saved = os.environ.get("TLHELPERS_DATA_MIRROR")
    >>> os.environ["TLHELPERS_DATA_MIRROR"] = os.pathsep.join(["/a", "/b"])
    >>> [p.as_posix() for p in mirror_dirs()][:2]
    ['/a', '/b']
    >>> if saved is None: del os.environ["TLHELPERS_DATA_MIRROR"]
    ... else: os.environ["TLHELPERS_DATA_MIRROR"] = saved
    """
    value = os.environ.get(MIRROR_ENV, "")
    dirs = [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]
    return dirs + [p for p in SYSTEM_DATA_DIRS if p.is_dir() and p not in dirs]


def offline() -> bool:
    """Return True when ``TLHELPERS_OFFLINE`` (or ``HF_HUB_OFFLINE``) forbids downloads.

    Examples
    --------
    >>> from tlhelpers.settings import offline
    >>> isinstance(offline(), bool)
    True
    """
    flags = (os.environ.get(OFFLINE_ENV, ""), os.environ.get("HF_HUB_OFFLINE", ""))
    return any(f.strip().lower() in {"1", "true", "yes"} for f in flags)


def get_device(device: str | torch.device | None = None) -> torch.device:
    """Pick a device: the one asked for, else CUDA, else Apple MPS, else CPU.

    Examples
    --------
    >>> from tlhelpers.settings import get_device
    >>> get_device("cpu")
    device(type='cpu')
    """
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def native_bf16(device: str | torch.device | None = None) -> bool:
    """Return True when ``device`` does bfloat16 arithmetic in hardware.

    CUDA GPUs from Ampere on (``torch.cuda.is_bf16_supported``), and CPUs with
    the AVX512-BF16 or AMX instructions. Elsewhere (older GPUs such as Colab's
    T4, most laptop CPUs, Apple MPS) bfloat16 is emulated and slower than float32.

    Examples
    --------
    >>> from tlhelpers.settings import native_bf16
    >>> isinstance(native_bf16("cpu"), bool)
    True
    """
    dev = get_device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    if dev.type == "cpu":
        checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None),
                  getattr(torch.cpu, "_is_amx_tile_supported", None))
        return any(bool(check()) for check in checks if check is not None)
    return False


def bf16_enabled(device: str | torch.device | None = None, *, enabled: bool | None = None) -> bool:
    """Whether :func:`mixed_precision` computes in bfloat16 on ``device`` (see there).

    Examples
    --------
    >>> from tlhelpers.settings import bf16_enabled
    >>> bf16_enabled("cpu", enabled=False)
    False
    """
    if enabled is not None:
        return bool(enabled)
    flag = os.environ.get(PRECISION_ENV, "").strip().lower()
    if flag in {"0", "false", "no", "off"}:
        return False
    if flag in {"1", "true", "yes", "on"}:
        return True
    if flag:
        raise ValueError(f"{PRECISION_ENV}={flag!r}: use 1 (bfloat16) or 0 (float32), or leave it unset")
    return native_bf16(device)


def describe_precision(device: str | torch.device | None = None) -> str:
    """Say in words whether :func:`mixed_precision` is on for ``device``, and why.

    For a page or a log: "on: this CPU has bfloat16 units", "off: this GPU has no
    bfloat16 units, so everything runs in float32", or the override when
    ``TLHELPERS_MIXED_PRECISION`` forces it.

    Examples
    --------
    >>> from tlhelpers.settings import describe_precision
    >>> describe_precision("cpu").startswith(("on", "off"))
    True
    """
    dev = get_device(device)
    on, native = bf16_enabled(dev), native_bf16(dev)
    what = {"cpu": "this CPU", "cuda": "this GPU"}.get(dev.type, f"this {dev.type} device")
    if on and native:
        return f"on: {what} has bfloat16 units"
    if on:
        return (f"on, forced by {PRECISION_ENV}=1: {what} has no bfloat16 units, so bfloat16 is emulated "
                f"(slower than float32)")
    if native:
        return f"off, switched off by {PRECISION_ENV}=0: everything runs in float32"
    return f"off: {what} has no bfloat16 units, so everything runs in float32"


def mixed_precision(device: str | torch.device | None = None, *, enabled: bool | None = None):
    """A context in which matrix products run in bfloat16 where that is fast (``torch.autocast``).

    Wrap a training run or a prediction pass in it. Weights, gradients and the
    optimiser's state stay float32; only the products inside the forward pass
    (and their gradients) are computed in bfloat16, about twice as fast as
    float32 where the hardware has bfloat16 units. bfloat16 keeps 8 bits of
    mantissa and float32's range, so unlike float16 it needs no loss scaling.
    Results differ from float32 in the last digits, as two GPUs' results do.

    Parameters
    ----------
    device : str or torch.device, optional
        The device the computation runs on (default: :func:`get_device`).
    enabled : bool, optional
        ``None`` (default): on where :func:`native_bf16` says the device has
        bfloat16 units, unless ``TLHELPERS_MIXED_PRECISION`` says otherwise;
        ``True`` / ``False`` force it.

    Returns
    -------
    context manager
        ``torch.autocast(device_type, dtype=torch.bfloat16)``, or one that does nothing.

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.settings import mixed_precision
    >>> with mixed_precision("cpu", enabled=True):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.bfloat16
    >>> with mixed_precision("cpu", enabled=False):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.float32
    """
    dev = get_device(device)
    if not bf16_enabled(dev, enabled=enabled):
        return contextlib.nullcontext()
    if dev.type not in {"cpu", "cuda"}:
        raise ValueError(f"mixed precision is not supported on {dev.type}; pass enabled=False")
    # no weight-cast cache: it would keep serving the pre-step bfloat16 copies while the optimiser steps inside
    return torch.autocast(dev.type, dtype=torch.bfloat16, cache_enabled=False)


def seed_everything(seed: int = 0, *, deterministic: bool = False) -> None:
    """Seed Python, NumPy and PyTorch; optionally ask for deterministic kernels.

    Parameters
    ----------
    seed : int
        The seed for every generator.
    deterministic : bool
        Also call ``torch.use_deterministic_algorithms(True)`` and turn off the
        cuDNN autotuner, so that two runs on one machine give identical numbers
        (slower on GPU; an error where an operation has no deterministic kernel).

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.settings import seed_everything
    >>> seed_everything(1); a = torch.rand(2)
    >>> seed_everything(1); b = torch.rand(2)
    >>> bool(torch.equal(a, b))
    True
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def determinism() -> dict:
    """The process-wide determinism switches, to put back with :func:`set_determinism`.

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.settings import determinism, seed_everything, set_determinism
    >>> before = determinism(); seed_everything(0, deterministic=True)
    >>> torch.are_deterministic_algorithms_enabled()
    True
    >>> set_determinism(before); torch.are_deterministic_algorithms_enabled() == before["algorithms"]
    True
    """
    return {"algorithms": torch.are_deterministic_algorithms_enabled(),
            "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cudnn_deterministic": torch.backends.cudnn.deterministic}


def set_determinism(state: dict) -> None:
    """Restore the switches :func:`determinism` returned."""
    torch.use_deterministic_algorithms(state["algorithms"], warn_only=state["warn_only"])
    torch.backends.cudnn.benchmark = state["cudnn_benchmark"]
    torch.backends.cudnn.deterministic = state["cudnn_deterministic"]
