"""A frozen pretrained network as a feature extractor, with a disk cache.

:func:`extract_features` runs a dataset through a model once, in evaluation
mode and without gradients, and returns the activations of chosen layers
(global-average pooled by default) with the labels. The result is stored on
disk under a key made of the model's weights, the dataset's files and
transform, the layers and the pooling, so a second call with the same inputs
only reads a file, and any change to those inputs computes afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from . import settings
from .io import save_torch
from .models import head

PENULTIMATE = "penultimate"


def _hash_tensors(h, tensors) -> None:
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 of a model's class and every tensor of its state_dict.

    Examples
    --------
    >>> from torch import nn
    >>> from tlhelpers.features import model_fingerprint
    >>> len(model_fingerprint(nn.Linear(2, 2)))
    64
    """
    h = hashlib.sha256(type(model).__name__.encode())
    state = model.state_dict()
    for k in state:
        h.update(k.encode())
    _hash_tensors(h, state.values())
    return h.hexdigest()


def dataset_fingerprint(dataset: Dataset) -> str:
    """SHA-256 describing a dataset's items and transform (files by path, size and mtime).

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from tlhelpers.features import dataset_fingerprint
    >>> a = dataset_fingerprint(TensorDataset(torch.zeros(2, 3)))
    >>> a == dataset_fingerprint(TensorDataset(torch.ones(2, 3)))
    False
    """
    h = hashlib.sha256(type(dataset).__name__.encode())
    if isinstance(dataset, Subset):
        h.update(dataset_fingerprint(dataset.dataset).encode())
        h.update(json.dumps([int(i) for i in dataset.indices]).encode())
    elif isinstance(dataset, TensorDataset):
        _hash_tensors(h, dataset.tensors)
    elif hasattr(dataset, "samples"):
        for path, target in dataset.samples:
            st = os.stat(path)
            h.update(f"{path}|{st.st_size}|{st.st_mtime_ns}|{target}\n".encode())
    else:
        h.update(f"{dataset!r}|{len(dataset)}".encode())
    h.update(repr(getattr(dataset, "transform", None)).encode())
    return h.hexdigest()


def _pool(x: torch.Tensor, pool: str | None) -> torch.Tensor:
    if isinstance(x, (tuple, list)):
        x = x[0]
    if pool is None or x.dim() <= 2:
        return x
    if x.dim() == 3:  # (N, tokens, dim) transformer output: the class token
        return x[:, 0] if pool == "cls" else x.mean(1)
    if pool == "avg":
        return x.mean(dim=tuple(range(2, x.dim())))
    if pool == "max":
        return x.amax(dim=tuple(range(2, x.dim())))
    if pool == "avgmax":
        return torch.cat([_pool(x, "avg"), _pool(x, "max")], dim=1)
    raise ValueError(f"pool must be 'avg', 'max', 'avgmax', 'cls' or None, not {pool!r}")


def extract_features(model: nn.Module, dataset: Dataset, layers: list[str] | None = None,
                     pool: str | None = "avg", batch_size: int = 32, device: str | None = None,
                     num_workers: int = 0, cache: bool | str | os.PathLike = True,
                     progress: bool = True, channels_last: bool = True
                     ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Activations of ``layers`` for every item of ``dataset``, plus the labels.

    Parameters
    ----------
    model : nn.Module
        The (frozen) network; it is put in eval mode and run without gradients.
    dataset : Dataset
        Yields ``(input, label)``; its transform is part of the cache key.
    layers : list of str, optional
        Module names (as in ``model.named_modules()``) whose outputs to keep,
        and/or ``"penultimate"`` (the input of the classifier head, the
        default).
    pool : {"avg", "max", "avgmax", "cls", None}
        How to reduce spatial maps to vectors: average, maximum, both
        concatenated (``[avg, max]``, twice the channels), the class token of a
        transformer, or ``None`` to keep full maps.
    batch_size, num_workers : int
        DataLoader settings.
    device : str, optional
        Default: :func:`tlhelpers.settings.get_device`.
    cache : bool or path
        ``True``: cache under ``$TLHELPERS_CACHE/features``; a path: cache
        there; ``False``: compute every time.
    progress : bool
        Show a progress bar.
    channels_last : bool
        Run convolutions in channels-last memory layout (about 1.6x faster on
        CPUs; the model's weights change layout, not value).

    Returns
    -------
    features : dict of str to Tensor
        One ``(N, ...)`` CPU tensor per layer.
    labels : Tensor
        ``(N,)`` int64.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from tlhelpers.models import create_model
    >>> from tlhelpers.features import extract_features
    >>> m = create_model("resnet18", pretrained=False)
    >>> ds = TensorDataset(torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 0, 1]))
    >>> f, y = extract_features(m, ds, layers=["penultimate", "layer3"], cache=False, progress=False)
    >>> tuple(f["penultimate"].shape), tuple(f["layer3"].shape), y.tolist()
    ((4, 512), (4, 256), [0, 1, 0, 1])
    """
    from tqdm.auto import tqdm

    layers = list(layers or [PENULTIMATE])
    cache_file = None
    if cache:
        root = settings.cache_dir() / "features" if cache is True else Path(cache)
        key = hashlib.sha256(json.dumps(
            [model_fingerprint(model), dataset_fingerprint(dataset), layers, pool]).encode()).hexdigest()
        cache_file = root / f"{key[:32]}.pt"
        if cache_file.exists():
            try:
                stored = torch.load(cache_file, map_location="cpu", weights_only=True)
                return stored["features"], stored["labels"]
            except Exception:  # an unreadable cache entry is recomputed, never fatal
                cache_file.unlink(missing_ok=True)

    dev = settings.get_device(device)
    named = dict(model.named_modules())
    unknown = [n for n in layers if n != PENULTIMATE and n not in named]
    if unknown:
        raise KeyError(f"no module named {unknown} in {type(model).__name__}; "
                       f"e.g. {[n for n in named if n][:8]}")
    outputs: dict[str, torch.Tensor] = {}
    hooks = []
    for name in layers:
        if name == PENULTIMATE:
            hooks.append(head(model).register_forward_pre_hook(
                lambda _m, args, name=name: outputs.__setitem__(name, args[0])))
        else:
            hooks.append(named[name].register_forward_hook(
                lambda _m, _a, out, name=name: outputs.__setitem__(name, out)))
    was_training = model.training
    model.eval().to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    collected: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    labels = []
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                        pin_memory=dev.type == "cuda")
    try:
        with torch.no_grad():
            for x, y in tqdm(loader, desc="features", disable=not progress, leave=False):
                outputs.clear()
                x = x.to(dev, non_blocking=True)
                model(x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x)
                for n in layers:
                    collected[n].append(_pool(outputs[n], pool).float().cpu().contiguous())
                labels.append(torch.as_tensor(y))
    finally:
        for hk in hooks:
            hk.remove()
        model.train(was_training)
    features = {n: torch.cat(v) for n, v in collected.items()}
    label_tensor = torch.cat(labels).long()
    if cache_file is not None:
        save_torch({"features": features, "labels": label_tensor}, cache_file)
    return features, label_tensor
