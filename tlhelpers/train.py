"""Training loops in plain PyTorch: one epoch, one evaluation pass, and a short ``fit``.

The pieces, in the order a reader meets them (torchvision ``references/`` style):

- :func:`train_one_epoch` -- one pass over a loader with an optimizer;
- :func:`evaluate_one_epoch` -- the same pass without gradients;
- :func:`fit` -- epochs of the two, plus what a long run needs: seeding,
  early stopping (:class:`EarlyStopping`), an atomic checkpoint after every
  epoch and ``resume=True`` (:mod:`tlhelpers.checkpoint`), schedulers.

Batches and outputs are read by :mod:`tlhelpers.batch`, so the same loops
train an image classifier on ``(x, y)``, a Hugging Face model on a tokenizer's
dict (it computes its own loss from ``labels``) and a torchvision detector
(a dict of losses). Anything else goes through one hook, ``step_fn(model,
batch) -> loss`` (or a dict with ``"loss"`` and optionally ``"logits"``,
``"targets"``).
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from . import batch as B
from . import settings
from .checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from .models import set_batchnorm_eval

StepFn = Callable[[nn.Module, Any], "torch.Tensor | dict"]


def _step(model: nn.Module, batch: Any, loss_fn: Callable | None, step_fn: StepFn | None,
          where: str) -> dict:
    """Loss (and logits and targets, where there are any) of one batch already on the device."""
    if step_fn is not None:
        out = step_fn(model, batch)
        out = dict(out) if isinstance(out, dict) else {"loss": out}
        if "n" not in out:
            inputs, targets = B.split(batch)
            out["n"] = B.size(inputs)
            out.setdefault("targets", targets)
        return out
    inputs, targets = B.split(batch)
    B.check_finite(inputs, where=where)
    own_loss = loss_fn is None and isinstance(inputs, (dict, list, tuple))  # HF dicts, detector image lists
    output = B.forward(model, inputs, targets if own_loss else None)
    logits = B.logits(output)
    if isinstance(targets, torch.Tensor) and logits is not None and logits.dim() == 2:
        B.check_labels(targets, logits.shape[1], where=where)
    loss = B.loss(output) if own_loss else None
    if loss is None:
        if targets is None:
            raise ValueError(f"the batch{where} has no targets and the model computed no loss: "
                             f"train on (inputs, targets) batches or pass step_fn")
        if logits is None:
            raise ValueError(f"cannot find logits in a {type(output).__name__} output{where}; pass step_fn")
        loss = (loss_fn or nn.functional.cross_entropy)(logits, targets)
    return {"loss": loss, "logits": logits, "targets": targets, "n": B.size(inputs)}


def _correct(out: dict) -> tuple[int, int]:
    """(correct, counted) of a classification batch, per example or per pixel; (0, 0) when there is none."""
    logits, targets = out.get("logits"), out.get("targets")
    if not (isinstance(logits, torch.Tensor) and isinstance(targets, torch.Tensor)):
        return 0, 0
    # dense outputs follow cross-entropy's (N, C, d1, ...) scores for (N, d1, ...) labels: segmentation
    dense = logits.dim() > 2 and logits.shape[:1] + logits.shape[2:] == targets.shape
    if not (logits.dim() == 2 and targets.dim() == 1 or dense) or targets.is_floating_point():
        return 0, 0
    keep = targets != B.IGNORE_INDEX
    return int((logits.argmax(1)[keep] == targets[keep]).sum()), int(keep.sum())


def _run(model, loader, optimizer, loss_fn, step_fn, scheduler, grad_clip, device, epoch, progress,
         channels_last) -> dict[str, float]:
    from tqdm.auto import tqdm

    training = optimizer is not None
    total_loss, correct, counted, seen = 0.0, 0, 0, 0
    with torch.set_grad_enabled(training):
        for step, batch in enumerate(tqdm(loader, desc="train" if training else "eval",
                                          disable=not progress, leave=False)):
            batch = B.to_device(batch, device, non_blocking=True)
            if channels_last and isinstance(batch, (tuple, list)) and isinstance(batch[0], torch.Tensor) \
                    and batch[0].dim() == 4:
                batch = (batch[0].contiguous(memory_format=torch.channels_last), *batch[1:])
            where = f" (epoch {epoch}, batch {step})"
            out = _step(model, batch, loss_fn, step_fn, where)
            loss = out["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss is {loss.item()}{where}: training diverged. Lower the learning rate, clip "
                    f"gradients (grad_clip=1.0) or look for NaN/inf in the inputs; the last checkpoint "
                    f"(if any) still holds the previous epoch")
            if training:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
            n = out["n"]
            total_loss += float(loss.detach()) * n
            c, k = _correct(out)
            correct, counted = correct + c, counted + k
            seen += n
    if seen == 0:
        raise ValueError("the data loader yielded no batches (empty dataset, or drop_last with too few items)")
    return {"loss": total_loss / seen, "accuracy": correct / counted if counted else float("nan")}


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, *,
                    loss_fn: Callable | None = None, step_fn: StepFn | None = None, scheduler: Any = None,
                    grad_clip: float | None = None, device: str | None = None, epoch: int = 0,
                    progress: bool = True, channels_last: bool = False) -> dict[str, float]:
    """One training pass over ``loader``; returns the mean loss and accuracy.

    The model is used in whatever mode it is in (call ``model.train()``
    first). ``scheduler`` here steps after every batch (one-cycle schedules).
    Labels are checked against the head in every batch, and NaN/inf inputs
    stop the run before they reach BatchNorm's running statistics.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from tlhelpers.data import tensor_loader
    >>> from tlhelpers.train import train_one_epoch
    >>> _ = torch.manual_seed(0); x = torch.randn(64, 2); y = (x[:, 0] > 0).long()
    >>> m = nn.Linear(2, 2); opt = torch.optim.SGD(m.parameters(), lr=0.5)
    >>> first = train_one_epoch(m, tensor_loader(x, y, batch_size=16, seed=0), opt, progress=False)
    >>> later = [train_one_epoch(m, tensor_loader(x, y, batch_size=16, seed=0), opt, progress=False)
    ...          for _ in range(5)][-1]
    >>> later["loss"] < first["loss"]
    True
    """
    dev = settings.get_device(device)
    return _run(model, loader, optimizer, loss_fn, step_fn, scheduler, grad_clip, dev, epoch, progress,
                channels_last)


def evaluate_one_epoch(model: nn.Module, loader: DataLoader, *, loss_fn: Callable | None = None,
                       step_fn: StepFn | None = None, device: str | None = None, progress: bool = False,
                       channels_last: bool = False) -> dict[str, float]:
    """Mean loss and accuracy over ``loader`` without gradients (in the model's current mode).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from tlhelpers.data import tensor_loader
    >>> from tlhelpers.train import evaluate_one_epoch
    >>> m = nn.Linear(2, 2)
    >>> r = evaluate_one_epoch(m.eval(), tensor_loader(torch.eye(2), torch.tensor([0, 1]), shuffle=False))
    >>> sorted(r)
    ['accuracy', 'loss']
    """
    dev = settings.get_device(device)
    return _run(model, loader, None, loss_fn, step_fn, None, None, dev, 0, progress, channels_last)


class EarlyStopping:
    """Stop after ``patience`` epochs without improvement of ``monitor``; remember the best weights.

    ``*_loss`` columns are minimised, anything else maximised. Its state goes
    into the checkpoint, so a resumed run stops where an uninterrupted one did.

    Examples
    --------
    >>> from torch import nn
    >>> from tlhelpers.train import EarlyStopping
    >>> es = EarlyStopping(patience=1, monitor="val_loss"); m = nn.Linear(1, 1)
    >>> [es.update({"val_loss": v}, m) for v in [1.0, 0.5, 0.7]]
    [False, False, True]
    """

    def __init__(self, patience: int | None, *, monitor: str = "val_loss"):
        self.patience, self.monitor = patience, monitor
        self.best_value: float | None = None
        self.best_state: dict | None = None
        self.bad_epochs = 0
        self.stopped = False

    def update(self, row: dict, model: nn.Module) -> bool:
        """Record one epoch's row; return True when training should stop."""
        if self.patience is None:
            return False
        value = row[self.monitor]
        minimize = self.monitor.endswith("loss")
        if self.best_value is None or (value < self.best_value if minimize else value > self.best_value):
            self.best_value, self.bad_epochs = value, 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.bad_epochs += 1
        self.stopped = self.bad_epochs >= self.patience
        return self.stopped


class OneCycle:
    """A one-cycle schedule that :func:`fit` builds once it knows the number of steps; see :func:`one_cycle`."""

    def __init__(self, **kwargs: Any) -> None:
        unknown = {"max_lr", "total_steps", "epochs", "steps_per_epoch"} & set(kwargs)
        if unknown:
            raise ValueError(f"one_cycle takes the peak rates from the optimizer's groups and the steps "
                             f"from fit; do not pass {sorted(unknown)}")
        self.kwargs = kwargs

    def __call__(self, optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.OneCycleLR:
        peaks = [group["lr"] for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=total_steps,
                                                   **self.kwargs)

    def __repr__(self) -> str:
        return f"one_cycle({', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())})"


def one_cycle(**kwargs: Any) -> OneCycle:
    """The one-cycle schedule (Smith & Topin, 2019) for :func:`fit`, each parameter group peaking at its own ``lr``.

    Fine-tuning gives the new head a larger learning rate than the pretrained
    blocks (:func:`tlhelpers.models.param_groups`). Passed as ``scheduler=``,
    this builds ``torch.optim.lr_scheduler.OneCycleLR`` with every group's
    ``lr`` as that group's peak and ``epochs * len(train_loader)`` steps, and
    steps it after every batch: the rate warms up from peak / 25 (OneCycleLR's
    default ``div_factor``), then anneals far below it. The steps are counted for the whole run, so a run resumed
    from a checkpoint keeps its schedule.

    Parameters
    ----------
    **kwargs
        Passed on to ``OneCycleLR`` (``pct_start``, ``div_factor``,
        ``anneal_strategy``, ...); not ``max_lr`` or ``total_steps``, which come
        from the optimizer and from ``fit``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from tlhelpers.data import tensor_loader
    >>> from tlhelpers.train import fit, one_cycle
    >>> net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> opt = torch.optim.AdamW([{"params": net[0].parameters(), "lr": 1e-3},
    ...                          {"params": net[2].parameters(), "lr": 1e-2}])
    >>> dl = tensor_loader(torch.randn(64, 2), torch.randint(0, 2, (64,)), batch_size=16, seed=0)
    >>> h = fit(net, dl, epochs=3, optimizer=opt, scheduler=one_cycle(pct_start=0.25), progress=False)
    >>> [f"{lr:.1e}" for lr in h["lr"]]   # the head's rate as each epoch starts: peak / 25, near the peak, down
    ['4.0e-04', '8.8e-03', '2.5e-03']
    """
    return OneCycle(**kwargs)


def _dataset_classes(loader: DataLoader) -> list | None:
    ds = getattr(loader, "dataset", None)
    while ds is not None and not hasattr(ds, "classes") and hasattr(ds, "dataset"):
        ds = ds.dataset  # Subset
    classes = getattr(ds, "classes", None)
    return list(classes) if classes is not None else None


def _check_head(model: nn.Module, loader: DataLoader) -> None:
    """The head must have one output per class of the data, when both are known."""
    classes = _dataset_classes(loader)
    if not classes:
        return
    from .models import num_outputs
    try:
        n = num_outputs(model)
    except Exception:  # a model whose head tlhelpers cannot find: labels are still checked per batch
        return
    if n != len(classes) and not (n == 1 and len(classes) == 2):
        raise ValueError(f"the model has {n} outputs but the data has {len(classes)} classes "
                         f"({classes[:5]}{' ...' if len(classes) > 5 else ''}); give it a new head with "
                         f"tlhelpers.models.replace_head(model, {len(classes)})")


def fit(model: nn.Module, train_loader: DataLoader, val_loader: DataLoader | None = None, *,
        epochs: int = 10, optimizer: torch.optim.Optimizer | None = None, lr: float = 1e-3,
        loss_fn: Callable | None = None, step_fn: StepFn | None = None, scheduler: Any = None,
        scheduler_step: str | None = None, early_stopping: int | None = None, monitor: str = "val_loss",
        checkpoint: str | os.PathLike | None = None, resume: bool = False, overwrite: bool = False,
        grad_clip: float | None = None, batchnorm_eval: bool = False, channels_last: bool = False,
        seed: int | None = None, deterministic: bool = False, device: str | None = None,
        progress: bool = True, on_epoch_end: Callable[[int, dict], None] | None = None) -> pd.DataFrame:
    """Train ``model`` and return one history row per epoch.

    Parameters
    ----------
    model : nn.Module
        Maps a batch's inputs to logits, or computes its own loss (Hugging
        Face models given ``labels``, torchvision detectors in train mode).
    train_loader, val_loader : DataLoader
        Batches as :mod:`tlhelpers.batch` reads them; validation is optional.
    epochs : int
        Number of epochs in the whole run (also when resuming).
    optimizer : Optimizer, optional
        Default: ``AdamW`` over the trainable parameters with ``lr``.
    loss_fn : callable, optional
        ``loss_fn(logits, targets)``; default cross-entropy (or the model's own loss).
    step_fn : callable, optional
        ``step_fn(model, batch) -> loss`` (or a dict with ``"loss"``) for
        anything the default step does not cover; the batch is on the device.
    scheduler : LRScheduler or callable, optional
        A scheduler, a function ``optimizer -> scheduler``, or :func:`one_cycle`
        (built here with each group's ``lr`` as its peak, over every step of the run).
    scheduler_step : {"epoch", "batch"}, optional
        When the scheduler steps. Default: after every batch for
        :func:`one_cycle`, after every epoch otherwise.
    early_stopping : int, optional
        Stop after this many epochs without improvement of ``monitor``; the
        best weights are restored at the end.
    monitor : str
        History column watched by early stopping, checked before training.
    checkpoint : path, optional
        Saved atomically after every epoch.
    resume : bool
        Continue from ``checkpoint`` if it exists (a run that had stopped
        early stays stopped); prints what it resumed.
    overwrite : bool
        Allow a new run (``resume=False``) to replace an existing checkpoint.
    grad_clip : float, optional
        Clip the gradient norm.
    batchnorm_eval : bool
        Keep every BatchNorm layer in eval mode during training: running
        statistics stay as pretrained, affine parameters still learn.
    channels_last : bool
        Run convolutions in channels-last memory layout (often faster on CPUs).
    seed : int, optional
        Seed everything before anything random in ``fit``. Seed the model's
        creation yourself (``settings.seed_everything`` before building it).
    deterministic : bool
        With ``seed``, use deterministic kernels during this call only.
    device : str, optional
        Default: CUDA, then MPS, then CPU.
    progress : bool
        Show progress bars.
    on_epoch_end : callable, optional
        Called as ``on_epoch_end(epoch, row)`` after each epoch's checkpoint.

    Returns
    -------
    pandas.DataFrame
        Columns ``epoch, train_loss, train_accuracy, [val_loss, val_accuracy,] lr, seconds``.
        Accuracy is per example, or per pixel for segmentation outputs
        (``(N, C, H, W)`` scores for ``(N, H, W)`` labels); NaN where there is none.

    Raises
    ------
    FloatingPointError
        When the loss becomes NaN or infinite.
    ValueError
        When the head does not fit the data's classes, labels are out of
        range, or ``monitor`` is not a history column.
    FileExistsError
        When ``checkpoint`` exists and neither ``resume`` nor ``overwrite`` is set.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from tlhelpers.data import tensor_loader
    >>> from tlhelpers.train import fit
    >>> x = torch.randn(64, 2); y = (x[:, 0] > 0).long()
    >>> dl = tensor_loader(x, y, batch_size=16, seed=0)
    >>> h = fit(nn.Linear(2, 2), dl, dl, epochs=20, lr=0.1, seed=0, progress=False)
    >>> bool(h["val_accuracy"].iloc[-1] > 0.9)
    True
    """
    from tqdm.auto import tqdm

    if scheduler_step not in {None, "epoch", "batch"}:
        raise ValueError(f"scheduler_step must be 'epoch' or 'batch', not {scheduler_step!r}")
    if isinstance(scheduler, OneCycle):
        if scheduler_step == "epoch":
            raise ValueError("one_cycle counts batches: leave scheduler_step out (or pass 'batch')")
        scheduler_step = "batch"
    scheduler_step = scheduler_step or "epoch"
    columns = ["train_loss", "train_accuracy"] + (["val_loss", "val_accuracy"] if val_loader is not None else [])
    if early_stopping is not None and monitor not in columns:
        raise ValueError(f"monitor={monitor!r} is not a history column of this run: {columns}")
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None and checkpoint.exists() and not resume and not overwrite:
        raise FileExistsError(f"checkpoint {checkpoint} exists; pass resume=True to continue that run "
                              f"or overwrite=True to start a new one over it")
    _check_head(model, train_loader)
    saved_determinism = settings.determinism()
    try:
        if seed is not None:
            settings.seed_everything(seed, deterministic=deterministic)
        dev = settings.get_device(device)
        model.to(dev)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        if optimizer is None:
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
        if isinstance(scheduler, OneCycle):
            scheduler = scheduler(optimizer, total_steps=epochs * len(train_loader))
        elif scheduler is not None and not hasattr(scheduler, "step"):
            scheduler = scheduler(optimizer)
        stopper = EarlyStopping(early_stopping, monitor=monitor)
        rows: list[dict] = []
        start = 0
        generator = getattr(train_loader, "generator", None)
        if resume and checkpoint is not None:
            if checkpoint.exists():
                rows, start = _resume(checkpoint, model, optimizer, scheduler, stopper, generator, dev)
                print(f"resumed {checkpoint}: {start} of {epochs} epochs done"
                      + (" (it had stopped early; nothing to train)" if stopper.stopped else ""))
            else:
                print(f"no checkpoint at {checkpoint} yet: starting a new run")
        batch_scheduler = scheduler if scheduler_step == "batch" else None
        bar = tqdm(range(start, epochs), desc="epochs", disable=not progress, initial=start, total=epochs)
        for epoch in bar:
            if stopper.stopped:
                break
            t0 = time.perf_counter()
            model.train()
            if batchnorm_eval:
                set_batchnorm_eval(model, frozen_only=False)
            lr_now = optimizer.param_groups[-1]["lr"]
            tr = train_one_epoch(model, train_loader, optimizer, loss_fn=loss_fn, step_fn=step_fn,
                                 scheduler=batch_scheduler, grad_clip=grad_clip, device=dev, epoch=epoch,
                                 progress=progress, channels_last=channels_last)
            row = {"epoch": epoch + 1, "train_loss": tr["loss"], "train_accuracy": tr["accuracy"]}
            if val_loader is not None:
                model.eval()
                va = evaluate_one_epoch(model, val_loader, loss_fn=loss_fn, step_fn=step_fn, device=dev,
                                        channels_last=channels_last)
                row.update(val_loss=va["loss"], val_accuracy=va["accuracy"])
            if scheduler is not None and scheduler_step == "epoch":
                scheduler.step()
            row.update(lr=lr_now, seconds=time.perf_counter() - t0)
            rows.append(row)
            bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k.endswith(("loss", "accuracy"))})
            stop = stopper.update(row, model)
            if checkpoint is not None:
                save_checkpoint(checkpoint, model=model, optimizer=optimizer, scheduler=scheduler, epoch=epoch,
                                history=rows, loader_rng=generator.get_state() if generator is not None else None,
                                best_value=stopper.best_value, best_state=stopper.best_state,
                                bad_epochs=stopper.bad_epochs, stopped=stop)
            if on_epoch_end is not None:
                on_epoch_end(epoch, row)
            if stop:
                break
        bar.close()
        if stopper.best_state is not None:
            model.load_state_dict(stopper.best_state)
    finally:
        settings.set_determinism(saved_determinism)
    return pd.DataFrame(rows)


def _resume(path: Path, model, optimizer, scheduler, stopper: EarlyStopping, generator, dev) -> tuple[list, int]:
    state = load_checkpoint(path)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise ValueError(f"checkpoint {path} does not fit this model (different architecture or number "
                         f"of classes?): {exc}") from exc
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    stopper.best_value, stopper.best_state = state["best_value"], state["best_state"]
    stopper.bad_epochs, stopper.stopped = state["bad_epochs"], state.get("stopped", False)
    set_rng_state(state["rng"])
    if generator is not None and state.get("loader_rng") is not None:
        generator.set_state(state["loader_rng"])
    return state["history"], state["epoch"] + 1


def time_to_accuracy(history: pd.DataFrame, target: float, *, column: str = "val_accuracy") -> float:
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


def lr_finder(model: nn.Module, train_loader: DataLoader, *, start_lr: float = 1e-6, end_lr: float = 1.0,
              steps: int = 50, optimizer_fn: Callable | None = None, loss_fn: Callable | None = None,
              step_fn: StepFn | None = None, smoothing: float = 0.9, diverge: float = 4.0,
              batchnorm_eval: bool = False, device: str | None = None, progress: bool = True) -> pd.DataFrame:
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
    loss_fn, step_fn : callable, optional
        As in :func:`fit`.
    smoothing : float
        Exponential smoothing of the loss curve (bias-corrected).
    diverge : float
        Stop when the smoothed loss exceeds this multiple of the best.
    batchnorm_eval : bool
        Keep BatchNorm layers in eval mode during the test.
    device : str, optional
        Default: CUDA, then MPS, then CPU.
    progress : bool
        Show a progress bar over the steps.

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
    factor = (end_lr / start_lr) ** (1 / (steps - 1))
    rows, avg, best = [], 0.0, math.inf
    batches = iter(())
    model.train()
    if batchnorm_eval:
        set_batchnorm_eval(model, frozen_only=False)
    from tqdm.auto import tqdm

    try:
        for step in tqdm(range(steps), desc="LR range test", disable=not progress, leave=False):
            try:
                batch = next(batches)
            except StopIteration:
                batches = iter(train_loader)
                batch = next(batches)
            lr = start_lr * factor ** step
            for g in optimizer.param_groups:
                g["lr"] = lr
            loss = _step(model, B.to_device(batch, dev), loss_fn, step_fn, f" (LR-finder step {step})")["loss"]
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


def suggest_lr(curve: pd.DataFrame, *, divide: float = 10.0) -> float:
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
