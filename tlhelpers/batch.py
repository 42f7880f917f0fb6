"""What a batch and a model output look like: the one place that knows.

Every loop in ``tlhelpers`` (``train``, ``evaluate``, ``features``, ``adapt``)
goes through these few functions instead of unpacking batches by hand, so the
same loop trains an image classifier, a Hugging Face text model and a
torchvision detector.

A **batch** is what a ``DataLoader`` yields:

- ``x`` alone (a tensor): unlabelled inputs;
- ``(x,)`` or ``[x]``: unlabelled inputs;
- ``(x, y)``: inputs and targets, where ``x`` is a tensor, a dict of tensors
  (a tokenizer's output) or a list of image tensors (detection), and ``y`` is a
  tensor or a list of target dicts (``boxes``, ``labels``, ``masks``);
- a dict (a tokenizer's output, perhaps with a ``"labels"`` entry): the dict
  minus ``"labels"`` is the input, ``"labels"`` the target.

A **model output** is a tensor of logits, a tuple whose first item is the
logits (auxiliary heads), an object with ``.logits`` and perhaps ``.loss``
(``transformers``' ``ModelOutput``, Inception's named tuple) or a dict of
losses (torchvision detectors in training mode).

Examples
--------
>>> import torch
>>> from tlhelpers import batch
>>> x, y = batch.split((torch.zeros(4, 3), torch.tensor([0, 1, 0, 1])))
>>> tuple(x.shape), y.tolist()
((4, 3), [0, 1, 0, 1])
>>> batch.split({"input_ids": torch.ones(2, 5, dtype=torch.long), "labels": torch.tensor([1, 0])})[1].tolist()
[1, 0]
>>> batch.split(torch.zeros(2, 3))[1] is None
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

IGNORE_INDEX = -100  # the label cross-entropy (and Hugging Face) skip


def to_numpy(a: Any) -> np.ndarray:
    """A tensor (any device, with or without grad) or array-like as a numpy array.

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.batch import to_numpy
    >>> to_numpy(torch.tensor([1, 2], requires_grad=False)).tolist()
    [1, 2]
    """
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def split(batch: Any) -> tuple[Any, Any | None]:
    """Split a batch into ``(inputs, targets)``; targets are ``None`` when it has none.

    Raises
    ------
    ValueError
        For a tuple of more than two items (say which is the input with a
        custom ``step_fn``) or an empty one.
    """
    if isinstance(batch, Mapping):
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return inputs, batch.get("labels")
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)):
        if len(batch) == 1:
            return batch[0], None
        if len(batch) == 2:
            return batch[0], batch[1]
        raise ValueError(f"a batch of {len(batch)} items: tlhelpers expects inputs, or (inputs, targets); "
                         f"pass a step_fn to handle {len(batch)}-item batches")
    raise TypeError(f"cannot read a batch of type {type(batch).__name__}: expected a tensor, a dict, "
                    f"or a tuple (inputs, targets)")


def to_device(obj: Any, device: torch.device | str, *, non_blocking: bool = False) -> Any:
    """Move every tensor inside ``obj`` (tensor, dict, list, tuple, nested) to ``device``.

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.batch import to_device
    >>> out = to_device({"a": torch.zeros(1), "b": [torch.ones(1)], "c": "text"}, "cpu")
    >>> out["b"][0].device.type, out["c"]
    ('cpu', 'text')
    """
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, Mapping):
        moved = {k: to_device(v, device, non_blocking=non_blocking) for k, v in obj.items()}
        return type(obj)(moved) if hasattr(obj, "to") else moved  # keep a BatchEncoding a BatchEncoding
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # named tuple
        return type(obj)(*(to_device(v, device, non_blocking=non_blocking) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device, non_blocking=non_blocking) for v in obj)
    return obj


def size(inputs: Any) -> int:
    """Number of examples in the inputs of a batch.

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.batch import size
    >>> size(torch.zeros(3, 2)), size({"input_ids": torch.zeros(5, 7)}), size([torch.zeros(3, 8, 8)] * 2)
    (3, 5, 2)
    """
    if isinstance(inputs, torch.Tensor):
        return int(inputs.shape[0]) if inputs.dim() else 1
    if isinstance(inputs, Mapping):
        for v in inputs.values():
            if isinstance(v, torch.Tensor) and v.dim():
                return int(v.shape[0])
        raise ValueError(f"cannot tell the batch size of a dict without tensors (keys {list(inputs)})")
    if isinstance(inputs, Sequence):
        return len(inputs)
    raise TypeError(f"cannot tell the batch size of {type(inputs).__name__}")


def forward(model: nn.Module, inputs: Any, targets: Any | None = None) -> Any:
    """Call ``model`` on a batch's inputs: ``model(**inputs)`` for a dict, else ``model(inputs)``.

    Models that compute their own loss get the targets too: a dict input gets
    ``labels=targets`` (Hugging Face) and a list of images gets
    ``model(images, targets)`` in training mode (torchvision detectors).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from tlhelpers.batch import forward
    >>> tuple(forward(nn.Linear(3, 2), torch.zeros(4, 3)).shape)
    (4, 2)
    """
    if isinstance(inputs, Mapping):
        return model(**inputs, labels=targets) if targets is not None else model(**inputs)
    if isinstance(inputs, (list, tuple)) and targets is not None and model.training:
        return model(inputs, targets)
    return model(inputs)


def logits(output: Any) -> torch.Tensor | None:
    """The logits in a model's output, or ``None`` when it holds only losses.

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.batch import logits
    >>> t = torch.zeros(2, 3)
    >>> logits(t) is t, logits((t, torch.ones(2, 3))) is t, logits({"loss_box": torch.tensor(1.0)})
    (True, True, None)
    """
    if isinstance(output, torch.Tensor):
        return output
    value = getattr(output, "logits", None)
    if value is None and isinstance(output, Mapping):
        value = output.get("logits")
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(output, Mapping):
        return None
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


def loss(output: Any) -> torch.Tensor | None:
    """The loss a model computed itself, or ``None``.

    ``.loss`` of a ``transformers`` output; the sum of a dict of scalar losses
    (torchvision detectors in training mode).

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.batch import loss
    >>> float(loss({"loss_classifier": torch.tensor(1.0), "loss_box_reg": torch.tensor(0.5)}))
    1.5
    >>> loss(torch.zeros(2, 2)) is None
    True
    """
    value = getattr(output, "loss", None)
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(output, Mapping) and output and not isinstance(output.get("logits"), torch.Tensor):
        parts = [v for v in output.values() if isinstance(v, torch.Tensor) and v.dim() == 0]
        if parts and len(parts) == len(output):
            return sum(parts)
    return None


def check_labels(targets: torch.Tensor, num_outputs: int, *, where: str = "") -> None:
    """Raise a clear error when class labels do not fit a head with ``num_outputs`` outputs.

    ``-100`` (:data:`IGNORE_INDEX`) marks a label to skip; a batch made only of
    skipped labels is an error too (its loss would be NaN).

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.batch import check_labels
    >>> check_labels(torch.tensor([0, 2, -100]), 3)
    >>> check_labels(torch.tensor([0, 3]), 3)
    Traceback (most recent call last):
    ...
    ValueError: labels range 0..3 but the model outputs 3 classes; ...
    """
    if not isinstance(targets, torch.Tensor) or targets.is_floating_point() or targets.dim() != 1:
        return
    kept = targets[targets != IGNORE_INDEX]
    if kept.numel() == 0:
        raise ValueError(f"every label in this batch{where} is {IGNORE_INDEX} (ignored), so the loss is "
                         f"undefined; check the labels (or the tokenizer's label alignment)")
    lo, hi = int(kept.min()), int(kept.max())
    if lo < 0 or hi >= num_outputs:
        raise ValueError(f"labels range {lo}..{hi} but the model outputs {num_outputs} classes{where}; "
                         f"give the model one output per class (tlhelpers.models.replace_head) or fix the labels")


def check_finite(inputs: Any, *, where: str = "") -> None:
    """Raise when a floating-point input tensor holds NaN or infinity.

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.batch import check_finite
    >>> check_finite(torch.tensor([float("nan")]))
    Traceback (most recent call last):
    ...
    ValueError: the inputs hold NaN or infinite values; ...
    """
    tensors = inputs.values() if isinstance(inputs, Mapping) else (
        inputs if isinstance(inputs, (list, tuple)) else [inputs])
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(f"the inputs hold NaN or infinite values{where}; clean the data (a broken "
                             f"image, a division by zero in a transform) before running the model")
