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
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

CACHE_ENV = "TLHELPERS_CACHE"
MIRROR_ENV = "TLHELPERS_DATA_MIRROR"
OFFLINE_ENV = "TLHELPERS_OFFLINE"
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
