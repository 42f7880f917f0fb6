"""The fit loop: plain PyTorch, one function, nothing hidden.

:func:`fit` trains an ``nn.Module`` on a ``DataLoader`` and returns the
per-epoch history as a pandas DataFrame. It is the loop you would write by
hand (the book shows that loop first), plus what a long run needs:

- a progress bar that can be turned off;
- early stopping on a validation metric, keeping the best weights;
- learning-rate schedulers stepped per epoch or per batch;
- an atomic checkpoint after every epoch, and ``resume=True`` continuing from
  it to the same final weights an uninterrupted run reaches;
- a clear error on a NaN/inf loss or on labels the head cannot predict;
- device choice (CUDA, Apple MPS, CPU), seeding and deterministic mode.
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from . import settings
from .evaluate import _logits
from .io import save_torch
from .models import set_batchnorm_eval


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _run_epoch(model, loader, loss_fn, device, optimizer=None, scheduler=None, grad_clip=None,
               epoch=0, progress=False, channels_last=False) -> dict[str, float]:
    """One pass over ``loader``; trains when an optimizer is given. Returns loss and accuracy."""
    from tqdm.auto import tqdm

    training = optimizer is not None
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    checked = False
    with torch.set_grad_enabled(training):
        for step, (x, y) in enumerate(tqdm(loader, desc="train" if training else "val",
                                           disable=not progress, leave=False)):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            logits = _logits(model(x))
            if not checked and logits.dim() == 2 and y.dim() == 1 and not y.is_floating_point():
                if int(y.max()) >= logits.shape[1] or int(y.min()) < 0:
                    raise ValueError(
                        f"labels range {int(y.min())}..{int(y.max())} but the model outputs "
                        f"{logits.shape[1]} classes; replace the head with one output per class "
                        f"(tlhelpers.models.replace_head)")
                checked = True
            loss = loss_fn(logits, y)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss is {loss.item()} at epoch {epoch}, batch {step}: training diverged. "
                    f"Lower the learning rate, clip gradients (grad_clip=1.0) or look for NaN/inf "
                    f"in the inputs; the last checkpoint (if any) still holds the previous epoch")
            if training:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
            n = y.shape[0]
            total_loss += loss.detach() * n
            if logits.dim() == 2 and y.dim() == 1:
                correct += (logits.argmax(1) == y).sum()
            seen += n
    if seen == 0:
        raise ValueError("the data loader yielded no batches (empty dataset, or drop_last with too few items)")
    return {"loss": total_loss.item() / seen, "accuracy": correct.item() / seen}


def fit(model: nn.Module, train_loader: DataLoader, val_loader: DataLoader | None = None,
        epochs: int = 10, optimizer: torch.optim.Optimizer | None = None, lr: float = 1e-3,
        loss_fn: Callable | None = None, scheduler=None, scheduler_step: str = "epoch",
        device: str | None = None, early_stopping: int | None = None, monitor: str = "val_loss",
        checkpoint: str | os.PathLike | None = None, resume: bool = False, grad_clip: float | None = None,
        batchnorm_eval: bool = False, channels_last: bool = False,
        seed: int | None = None, deterministic: bool = False,
        progress: bool = True, on_epoch_end: Callable[[int, dict], None] | None = None) -> pd.DataFrame:
    """Train ``model`` and return one history row per epoch.

    Parameters
    ----------
    model : nn.Module
        Any module mapping a batch of inputs to logits.
    train_loader, val_loader : DataLoader
        Batches of ``(inputs, labels)``; validation is optional.
    epochs : int
        Number of epochs in the whole run (also when resuming).
    optimizer : Optimizer, optional
        Default: ``AdamW`` over the trainable parameters with ``lr``.
    loss_fn : callable, optional
        Default: cross-entropy.
    scheduler : LRScheduler or callable, optional
        A scheduler, or a function ``optimizer -> scheduler``.
    scheduler_step : {"epoch", "batch"}
        When the scheduler steps (one-cycle schedules step per batch).
    device : str, optional
        Default: CUDA, then MPS, then CPU.
    early_stopping : int, optional
        Stop after this many epochs without improvement of ``monitor``; the
        best weights are restored at the end.
    monitor : str
        History column watched by early stopping (``*_loss`` is minimised,
        anything else maximised).
    checkpoint : path, optional
        Saved atomically after every epoch (model, optimizer, scheduler, RNG
        states, history).
    resume : bool
        Continue from ``checkpoint`` if it exists.
    grad_clip : float, optional
        Clip the gradient norm.
    batchnorm_eval : bool
        Keep every BatchNorm layer in eval mode during training: running
        statistics stay as pretrained, affine parameters still learn.
    channels_last : bool
        Run convolutions in channels-last memory layout (often faster on CPUs).
    seed : int, optional
        Seed everything first; with ``deterministic`` also use deterministic kernels.
    progress : bool
        Show progress bars.
    on_epoch_end : callable, optional
        Called as ``on_epoch_end(epoch, row)`` after each epoch's checkpoint.

    Returns
    -------
    pandas.DataFrame
        Columns ``epoch, train_loss, train_accuracy, [val_loss, val_accuracy,] lr, seconds``.

    Raises
    ------
    FloatingPointError
        When the loss becomes NaN or infinite.
    ValueError
        When the labels do not fit the model's number of outputs.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> from tlhelpers.train import fit
    >>> x = torch.randn(64, 2); y = (x[:, 0] > 0).long()
    >>> dl = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
    >>> h = fit(nn.Linear(2, 2), dl, dl, epochs=20, lr=0.1, seed=0, progress=False)
    >>> bool(h["val_accuracy"].iloc[-1] > 0.9)
    True
    """
    from tqdm.auto import tqdm

    if scheduler_step not in {"epoch", "batch"}:
        raise ValueError(f"scheduler_step must be 'epoch' or 'batch', not {scheduler_step!r}")
    if seed is not None:
        settings.seed_everything(seed, deterministic)
    dev = settings.get_device(device)
    model.to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    if optimizer is None:
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    if scheduler is not None and not hasattr(scheduler, "step"):
        scheduler = scheduler(optimizer)
    rows: list[dict] = []
    start = 0
    best_value, best_state, bad_epochs = None, None, 0
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if resume and checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=dev, weights_only=False)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise ValueError(f"checkpoint {checkpoint} does not fit this model (different "
                             f"architecture or number of classes?): {exc}") from exc
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        rows, start = state["history"], state["epoch"] + 1
        best_value, best_state, bad_epochs = state["best_value"], state["best_state"], state["bad_epochs"]
        _set_rng_state(state["rng"])
        if getattr(train_loader, "generator", None) is not None and state.get("loader_rng") is not None:
            train_loader.generator.set_state(state["loader_rng"])
    minimize = monitor.endswith("loss")
    batch_scheduler = scheduler if scheduler_step == "batch" else None
    bar = tqdm(range(start, epochs), desc="epochs", disable=not progress, initial=start, total=epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        if batchnorm_eval:
            set_batchnorm_eval(model, frozen_only=False)
        lr_now = optimizer.param_groups[-1]["lr"]
        tr = _run_epoch(model, train_loader, loss_fn, dev, optimizer, batch_scheduler, grad_clip, epoch, progress,
                        channels_last)
        row = {"epoch": epoch + 1, "train_loss": tr["loss"], "train_accuracy": tr["accuracy"]}
        if val_loader is not None:
            model.eval()
            va = _run_epoch(model, val_loader, loss_fn, dev, epoch=epoch, channels_last=channels_last)
            row.update(val_loss=va["loss"], val_accuracy=va["accuracy"])
        if scheduler is not None and scheduler_step == "epoch":
            scheduler.step()
        row.update(lr=lr_now, seconds=time.perf_counter() - t0)
        rows.append(row)
        bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k.endswith(("loss", "accuracy"))})
        stop = False
        if early_stopping is not None:
            if monitor not in row:
                raise KeyError(f"monitor={monitor!r} is not a history column: {list(row)}")
            value = row[monitor]
            improved = best_value is None or (value < best_value if minimize else value > best_value)
            if improved:
                best_value, bad_epochs = value, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad_epochs += 1
                stop = bad_epochs >= early_stopping
        if checkpoint is not None:
            save_torch({
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "epoch": epoch, "history": rows, "rng": _rng_state(),
                "loader_rng": train_loader.generator.get_state()
                if getattr(train_loader, "generator", None) is not None else None,
                "best_value": best_value, "best_state": best_state, "bad_epochs": bad_epochs,
            }, checkpoint)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
        if stop:
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return pd.DataFrame(rows)


def time_to_accuracy(history: pd.DataFrame, target: float, column: str = "val_accuracy") -> float:
    """Seconds of training until ``column`` first reaches ``target`` (``inf`` if never).

    Examples
    --------
    >>> import pandas as pd
    >>> from tlhelpers.train import time_to_accuracy
    >>> h = pd.DataFrame({"val_accuracy": [0.5, 0.9, 0.95], "seconds": [1.0, 1.0, 1.0]})
    >>> time_to_accuracy(h, 0.9)
    2.0
    """
    reached = history[column].to_numpy() >= target
    if not reached.any():
        return math.inf
    return float(history["seconds"].to_numpy()[: int(np.argmax(reached)) + 1].sum())


def lr_finder(model: nn.Module, train_loader: DataLoader, start_lr: float = 1e-6, end_lr: float = 1.0,
              steps: int = 50, optimizer_fn: Callable | None = None, loss_fn: Callable | None = None,
              device: str | None = None, smoothing: float = 0.9, diverge: float = 4.0,
              batchnorm_eval: bool = False) -> pd.DataFrame:
    """Learning-rate range test (Smith 2017): raise the LR geometrically, one batch per step.

    The model's weights (and BatchNorm statistics) are restored afterwards, so
    the test leaves no trace. Stops early once the smoothed loss exceeds
    ``diverge`` times its minimum. A good learning rate lies where the loss
    still falls steeply, typically a few times below the minimum's LR; see
    :func:`suggest_lr`.

    Parameters
    ----------
    model : nn.Module
        Trainable parameters are those with ``requires_grad``.
    train_loader : DataLoader
        Cycled if it has fewer than ``steps`` batches.
    start_lr, end_lr : float
        Range of the geometric sweep.
    steps : int
        Number of batches (one LR each).
    optimizer_fn : callable, optional
        ``params, lr -> optimizer``; default AdamW.
    loss_fn : callable, optional
        Default cross-entropy.
    smoothing : float
        Exponential smoothing of the loss curve (bias-corrected).
    diverge : float
        Stop when the smoothed loss exceeds this multiple of the best.
    batchnorm_eval : bool
        Keep BatchNorm layers in eval mode during the test.

    Returns
    -------
    pandas.DataFrame
        Columns ``lr, loss, smoothed_loss``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> from tlhelpers.train import lr_finder, suggest_lr
    >>> _ = torch.manual_seed(0); x = torch.randn(256, 4); y = (x.sum(1) > 0).long()
    >>> m = nn.Linear(4, 2); w = m.weight.clone()
    >>> curve = lr_finder(m, DataLoader(TensorDataset(x, y), batch_size=32), steps=40)
    >>> torch.equal(m.weight, w), 1e-4 < suggest_lr(curve) < 1.0
    (True, True)
    """
    if steps < 2:
        raise ValueError(f"steps must be at least 2, not {steps}")
    dev = settings.get_device(device)
    model.to(dev)
    saved = copy.deepcopy(model.state_dict())
    was_training = model.training
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (all frozen)")
    optimizer = (optimizer_fn or (lambda ps, lr: torch.optim.AdamW(ps, lr=lr)))(params, start_lr)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    factor = (end_lr / start_lr) ** (1 / (steps - 1))
    rows, avg, best = [], 0.0, math.inf
    batches = iter(())
    model.train()
    if batchnorm_eval:
        set_batchnorm_eval(model, frozen_only=False)
    try:
        for step in range(steps):
            try:
                x, y = next(batches)
            except StopIteration:
                batches = iter(train_loader)
                x, y = next(batches)
            lr = start_lr * factor ** step
            for g in optimizer.param_groups:
                g["lr"] = lr
            loss = loss_fn(_logits(model(x.to(dev))), y.to(dev))
            if not torch.isfinite(loss):
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            avg = smoothing * avg + (1 - smoothing) * loss.item()
            smoothed = avg / (1 - smoothing ** (step + 1))
            rows.append({"lr": lr, "loss": loss.item(), "smoothed_loss": smoothed})
            best = min(best, smoothed)
            if smoothed > diverge * best:
                break
    finally:
        model.load_state_dict(saved)
        model.train(was_training)
    return pd.DataFrame(rows)


def suggest_lr(curve: pd.DataFrame, divide: float = 10.0) -> float:
    """The LR at the smoothed loss's minimum divided by ``divide`` (a common, conservative rule).

    Examples
    --------
    >>> import pandas as pd
    >>> from tlhelpers.train import suggest_lr
    >>> suggest_lr(pd.DataFrame({"lr": [1e-4, 1e-3, 1e-2, 1e-1], "smoothed_loss": [1.0, 0.8, 0.5, 2.0]}))
    0.001
    """
    if curve.empty:
        raise ValueError("empty LR-finder curve (the first step already diverged?)")
    return float(curve["lr"].iloc[int(curve["smoothed_loss"].to_numpy().argmin())] / divide)
