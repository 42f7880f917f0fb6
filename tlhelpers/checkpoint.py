"""Save and resume a training run, and save a trained model for later use.

A checkpoint is a plain dict of tensors, numbers, strings and lists, written
atomically (a crash never leaves half a file) and read back with
``torch.load(weights_only=True)``: loading a checkpoint never runs code, so a
file from someone else cannot run a command on your machine.

- :func:`save_checkpoint` / :func:`load_checkpoint`: the state of a run
  (model, optimizer, scheduler, random generators, history, early stopping).
- :func:`save_model` / :func:`load_model`: a trained model's weights with its
  class names and preprocessing, to predict with later.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .io import save_torch

FORMAT = "tlhelpers-checkpoint-1"
MODEL_FORMAT = "tlhelpers-model-1"


def rng_state() -> dict:
    """Python, NumPy, PyTorch (and CUDA) generator states, as tensors and plain values.

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.checkpoint import rng_state, set_rng_state
    >>> s = rng_state(); a = torch.rand(1); set_rng_state(s)
    >>> bool(torch.rand(1) == a)
    True
    """
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _load(path: Path, what: str) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"refusing to load {path}: it holds Python objects other than tensors and plain values, and "
            f"unpickling them could run code; tlhelpers never does. Save plain state dicts instead "
            f"(tlhelpers.checkpoint.save_model). ({str(exc).splitlines()[0]})") from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise ValueError(f"cannot read {what} {path} (truncated or not a PyTorch file?): {exc}") from exc
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a tlhelpers {what} (it holds a {type(state).__name__})")
    return state


def save_checkpoint(path: str | os.PathLike, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                    epoch: int, history: list[dict], scheduler: Any = None,
                    loader_rng: torch.Tensor | None = None, best_value: float | None = None,
                    best_state: dict | None = None, bad_epochs: int = 0, stopped: bool = False) -> None:
    """Write the state of a run after ``epoch`` (0-based) atomically to ``path``.

    Examples
    --------
    >>> import tempfile, pathlib, torch
    >>> from tlhelpers.checkpoint import save_checkpoint, load_checkpoint
    >>> m = torch.nn.Linear(2, 2); opt = torch.optim.SGD(m.parameters(), lr=0.1)
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "run.pt"
    >>> save_checkpoint(p, model=m, optimizer=opt, epoch=0, history=[{"epoch": 1, "train_loss": 0.5}])
    >>> load_checkpoint(p)["epoch"]
    0
    """
    save_torch({
        "format": FORMAT, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": int(epoch), "history": [dict(r) for r in history], "rng": rng_state(),
        "loader_rng": loader_rng, "best_value": None if best_value is None else float(best_value),
        "best_state": best_state, "bad_epochs": int(bad_epochs), "stopped": bool(stopped),
    }, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (never runs code from the file).

    Raises
    ------
    ValueError
        When the file is not a tlhelpers checkpoint, is truncated, or holds
        pickled Python objects (refused: loading them could run code).
    """
    path = Path(path)
    state = _load(path, "checkpoint")
    if state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a tlhelpers training checkpoint (format {state.get('format')!r}, "
                         f"expected {FORMAT!r})")
    return state


def save_model(model: nn.Module, path: str | os.PathLike, *, classes: list[str],
               preprocessing: dict | None = None, name: str | None = None) -> Path:
    """Save a trained model's weights with its class names and preprocessing.

    Parameters
    ----------
    model : nn.Module
        The trained network.
    path : path
        Output file (written atomically).
    classes : list of str
        Class names, in the order of the model's outputs.
    preprocessing : dict, optional
        E.g. ``tlhelpers.models.preprocessing(name)``: input size, mean, std.
    name : str, optional
        The registered model name (``tlhelpers.models.create_model``) that
        rebuilds the architecture in :func:`load_model`.

    Examples
    --------
    >>> import tempfile, pathlib, torch
    >>> from tlhelpers.checkpoint import save_model, load_model
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "model.pt"
    >>> _ = save_model(torch.nn.Linear(3, 2), p, classes=["ant", "bee"])
    >>> m, info = load_model(p, model=torch.nn.Linear(3, 2))
    >>> info["classes"]
    ['ant', 'bee']
    """
    from .models import num_outputs

    classes = [str(c) for c in classes]
    try:  # the head the model registry finds (never a guess such as "the last Linear defined")
        out = model.out_features if isinstance(model, nn.Linear) else num_outputs(model)
    except ValueError:  # a custom model whose head cannot be found: nothing to check against
        out = None
    if out is not None and out != len(classes) and not (out == 1 and len(classes) == 2):
        raise ValueError(f"{len(classes)} class names for a model whose head has {out} "
                         f"outputs; pass one name per output")
    save_torch({"format": MODEL_FORMAT, "state_dict": model.state_dict(), "classes": classes,
                "preprocessing": dict(preprocessing or {}), "name": name}, path)
    return Path(path)


def load_model(path: str | os.PathLike, *, model: nn.Module | None = None) -> tuple[nn.Module, dict]:
    """Load what :func:`save_model` wrote; returns ``(model in eval mode, info)``.

    ``model`` is an architecture to load the weights into; without it the
    saved ``name`` is rebuilt with ``tlhelpers.models.create_model`` (no
    pretrained download needed: the saved weights replace them).
    ``info`` holds ``classes``, ``preprocessing`` and ``name``.
    """
    path = Path(path)
    state = _load(path, "model file")
    if state.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path} is not a model saved by tlhelpers.checkpoint.save_model "
                         f"(format {state.get('format')!r})")
    if model is None:
        if not state.get("name"):
            raise ValueError(f"{path} does not name its architecture; pass model= (an nn.Module of the same shape)")
        from . import models
        model = models.create_model(state["name"], pretrained=False, num_classes=len(state["classes"]))
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"the weights in {path} do not fit the given model: {exc}") from exc
    info = {k: state[k] for k in ("classes", "preprocessing", "name")}
    return model.eval(), info
