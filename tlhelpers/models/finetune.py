"""What fine-tuning does to a network: freeze blocks, give them learning rates, start the head from a probe.

All of these read the blocks from :func:`~tlhelpers.models.layer_groups`, so
they work on every family the anatomy table knows.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .anatomy import head, layer_groups


def freeze(model: nn.Module, *, trainable_blocks: int | None = 1) -> nn.Module:
    """Train only the last ``trainable_blocks`` blocks (the head is one); freeze the rest.

    ``trainable_blocks=1`` is a linear probe (head only), ``None`` unfreezes
    everything. Frozen BatchNorm layers keep updating their running statistics
    in ``train()`` mode unless you also call :func:`set_batchnorm_eval`.

    Examples
    --------
    >>> from tlhelpers.models import create_model, freeze, count_parameters
    >>> m = freeze(create_model("resnet18", pretrained=False, num_classes=2), trainable_blocks=1)
    >>> count_parameters(m, trainable_only=True)
    1026
    """
    groups = layer_groups(model)
    n = len(groups) if trainable_blocks is None else trainable_blocks
    if not 0 <= n <= len(groups):
        raise ValueError(f"trainable_blocks must be between 0 and {len(groups)} for this model, not {n}")
    for i, (_, params) in enumerate(groups):
        for p in params:
            p.requires_grad_(i >= len(groups) - n)
    return model


def set_batchnorm_eval(model: nn.Module, *, frozen_only: bool = True) -> nn.Module:
    """Put BatchNorm layers into eval mode, so their running statistics stay fixed.

    With ``frozen_only`` (default) only layers whose parameters are frozen;
    otherwise every BatchNorm layer (its affine parameters still train). Call
    it after ``model.train()``; small fine-tuning batches then use the
    pretrained statistics instead of noisy batch statistics.

    Examples
    --------
    >>> from tlhelpers.models import create_model, freeze, set_batchnorm_eval
    >>> m = freeze(create_model("resnet18", pretrained=False), trainable_blocks=1).train()
    >>> set_batchnorm_eval(m).bn1.training
    False
    """
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and (
                not frozen_only or not any(p.requires_grad for p in m.parameters())):
            m.eval()
    return model


def param_groups(model: nn.Module, lr: float, *, decay: float = 1.0, weight_decay: float = 0.0,
                 head_lr: float | None = None, include_frozen: bool = False) -> list[dict]:
    """Optimizer parameter groups, one per block, with layer-wise decayed learning rates.

    Without ``head_lr`` the head gets ``lr``, the block below it
    ``lr * decay``, the next ``lr * decay**2`` and so on (discriminative
    fine-tuning, Howard & Ruder 2018). With ``head_lr`` the head gets
    ``head_lr`` and the body starts at ``lr``: the block below the head
    ``lr``, the next ``lr * decay`` ...

    Parameters
    ----------
    model : nn.Module
        Any network :func:`layer_groups` can cut.
    lr : float
        Learning rate of the top block (the head, or the top body block when
        ``head_lr`` is given).
    decay : float
        Factor per block going down.
    weight_decay : float
        Put into every group.
    head_lr : float, optional
        A separate learning rate for the head (e.g. the LR-finder's
        suggestion for a head-only run).
    include_frozen : bool
        Keep frozen parameters in the groups, so gradual unfreezing can flip
        ``requires_grad`` later without rebuilding the optimizer (PyTorch
        optimizers skip parameters whose ``.grad`` is None). By default they
        are left out.

    Returns
    -------
    list of dict
        ``{"params", "lr", "weight_decay", "name"}``, input first, head last.

    Examples
    --------
    >>> from tlhelpers.models import create_model, param_groups
    >>> m = create_model("resnet18", pretrained=False)
    >>> [round(g["lr"], 6) for g in param_groups(m, lr=1e-2, decay=0.1)][-2:]
    [0.001, 0.01]
    >>> [round(g["lr"], 6) for g in param_groups(m, lr=1e-3, decay=0.1, head_lr=1e-2)][-3:]
    [0.0001, 0.001, 0.01]
    """
    groups = layer_groups(model)
    out = []
    for depth, (name, params) in enumerate(reversed(groups)):
        kept = [p for p in params if include_frozen or p.requires_grad]
        if not kept:
            continue
        if head_lr is None:
            rate = lr * decay ** depth
        else:
            rate = head_lr if depth == 0 else lr * decay ** (depth - 1)
        out.append({"params": kept, "lr": rate, "weight_decay": weight_decay, "name": name})
    return out[::-1]


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those that require gradients).

    Examples
    --------
    >>> from tlhelpers.models import create_model, count_parameters
    >>> count_parameters(create_model("resnet18", pretrained=False))
    11689512
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """Flops of CPU scaled-dot-product attention: the two batched products Q K^T and (softmax) V."""
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def count_macs(model: nn.Module | Callable, inputs: torch.Tensor | tuple[int, ...]) -> int:
    """Multiply-accumulate operations of one forward pass (one MAC is two floating-point operations).

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode`, with two
    gaps filled: PyTorch's fused multi-head-attention fast path is switched
    off during the count (it hides the projections inside one fused call),
    and CPU attention kernels are counted like their GPU twins. Cost does not
    depend on the weights, so a randomly initialised model gives the same count.
    A module is run in eval mode and its mode restored afterwards, so counting
    never moves BatchNorm's running statistics (a callable that wraps a module
    is run as it is: put that module in eval mode yourself).

    Parameters
    ----------
    model : nn.Module or callable
        Called once on the batch, without gradients.
    inputs : Tensor or shape
        An example batch, or its shape (a zero tensor of that shape is used).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from tlhelpers.models import count_macs
    >>> count_macs(nn.Linear(3, 2), (1, 3)), count_macs(nn.Linear(3, 2), (4, 3))
    (6, 24)
    >>> mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    >>> count_macs(lambda x: mha(x, x, x, need_weights=False)[0], (1, 5, 8))   # 4 x 5 x 8 x 8 + 2 x 2 x 5 x 5 x 4
    1680
    """
    from torch.utils.flop_counter import FlopCounterMode

    params = list(model.parameters()) if isinstance(model, nn.Module) else []
    x = inputs if isinstance(inputs, torch.Tensor) else torch.zeros(*inputs, device=params[0].device if params else None)
    extra = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}
    was = torch.backends.mha.get_fastpath_enabled()
    modes = {m: m.training for m in model.modules()} if isinstance(model, nn.Module) else {}
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        if isinstance(model, nn.Module):
            model.eval()
        with FlopCounterMode(display=False, custom_mapping=extra) as counter, torch.no_grad():
            model(x)
    finally:
        torch.backends.mha.set_fastpath_enabled(was)
        for m, training in modes.items():
            m.training = training
    return counter.get_total_flops() // 2


def _probe_arrays(probe: Any, scaler: Any) -> tuple[np.ndarray, np.ndarray, Any]:
    if hasattr(probe, "steps"):  # an sklearn Pipeline: [StandardScaler,] linear model
        *pre, (_, last) = probe.steps
        if len(pre) > 1 or (pre and not hasattr(pre[0][1], "scale_")):
            raise ValueError(f"head_from_probe folds at most one StandardScaler; the pipeline has "
                             f"{[type(s).__name__ for _, s in pre]} before the classifier")
        if pre and scaler is not None:
            raise ValueError("scaler given twice: in the pipeline and as scaler=")
        scaler = pre[0][1] if pre else scaler
        probe = last
    if hasattr(probe, "coef_"):
        coef, intercept = probe.coef_, probe.intercept_
    else:
        coef, intercept = probe
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    intercept = np.broadcast_to(np.asarray(intercept, dtype=np.float64), (coef.shape[0],)).copy()
    return coef, intercept, scaler


@torch.no_grad()
def head_from_probe(model_or_head: nn.Module, probe: Any, *, scaler: Any = None) -> nn.Linear:
    """Set a Linear head to a fitted linear probe (the first step of LP-FT, Kumar et al. 2022).

    The probe scores ``z = W s + b`` on standardised features
    ``s = (x - mean) / scale``; the head gets ``W / scale`` and
    ``b - W @ (mean / scale)``, so it reads raw features. A binary probe (one
    row of coefficients) fills a 2-output head as ``[-z/2, z/2]``: the softmax
    of that is the probe's sigmoid. A 1-output head gets ``z`` itself.

    Parameters
    ----------
    model_or_head : nn.Module
        The ``nn.Linear`` head, or a model whose head :func:`head` finds.
    probe : LogisticRegression, Pipeline or (coef, intercept)
        A fitted scikit-learn linear classifier (anything with ``coef_`` and
        ``intercept_``), a ``Pipeline`` of an optional ``StandardScaler`` and
        one, or the two arrays.
    scaler : StandardScaler, optional
        The fitted scaler the probe's inputs went through.

    Returns
    -------
    nn.Linear
        The head, changed in place.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn.linear_model import LogisticRegression
    >>> from torch import nn
    >>> from tlhelpers.models import head_from_probe
    >>> X = np.random.default_rng(0).normal(size=(40, 3)); y = (X[:, 0] > 0).astype(int)
    >>> clf = LogisticRegression().fit(X, y)
    >>> lin = head_from_probe(nn.Linear(3, 2), clf)
    >>> p = lin(torch.tensor(X, dtype=torch.float32)).softmax(1)[:, 1].detach().numpy()
    >>> bool(np.allclose(p, clf.predict_proba(X)[:, 1], atol=1e-5))
    True
    """
    linear = model_or_head if isinstance(model_or_head, nn.Linear) else head(model_or_head)
    coef, intercept, scaler = _probe_arrays(probe, scaler)
    if scaler is not None:
        scale = getattr(scaler, "scale_", None)
        mean = getattr(scaler, "mean_", None)
        scale = np.ones(coef.shape[1]) if scale is None else np.asarray(scale, dtype=np.float64)
        mean = np.zeros(coef.shape[1]) if mean is None else np.asarray(mean, dtype=np.float64)
        coef = coef / scale
        intercept = intercept - coef @ mean
    if coef.shape[0] == 1 and linear.out_features == 2:
        coef = np.concatenate([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    if coef.shape != tuple(linear.weight.shape):
        raise ValueError(f"the probe has coefficients of shape {coef.shape}, the head's weight is "
                         f"{tuple(linear.weight.shape)} (outputs x features): fit the probe on the features "
                         "this head reads, with as many classes as it has outputs")
    linear.weight.copy_(torch.as_tensor(coef, dtype=linear.weight.dtype))
    if linear.bias is not None:
        linear.bias.copy_(torch.as_tensor(intercept, dtype=linear.bias.dtype))
    elif np.any(intercept != 0):
        raise ValueError("the head has no bias but the probe has a non-zero intercept")
    return linear
