"""A frozen pretrained network as a feature extractor, with a disk cache.

:func:`extract_features` runs a dataset through a model once, in evaluation
mode and without gradients, and returns the activations of chosen layers
(global-average pooled by default) with the labels. The result is stored on
disk under a key made of the *content* of its inputs -- the model's
architecture and weights, the dataset's bytes, the transform's configuration
(a ``Lambda``'s code included), the layers and the pooling -- so a second call
with the same inputs only reads a file, and any change computes afresh. A
random transform (an augmentation) is refused for caching: one draw would be
stored as if it were the data. :class:`AugmentedViews` is the way round it: a
fixed number of *seeded* random views per image, the same on every run, which
can be extracted (and cached) once and reused by every head trained after.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from . import batch as B
from . import settings
from .io import save_torch, sha256_file
from .models import head

PENULTIMATE = "penultimate"
POOLS = ("avg", "max", "cls", "avgmax")
# Transforms that draw random numbers (torchvision v1 and v2 names); any class named Random* is too.
RANDOM_TRANSFORMS = {"ColorJitter", "RandAugment", "TrivialAugmentWide", "AugMix", "AutoAugment",
                     "GaussianBlur", "GaussianNoise", "ElasticTransform", "MixUp", "CutMix", "ScaleJitter"}


def _hash_tensors(h, tensors) -> None:
    for t in tensors:
        t = torch.as_tensor(t)
        h.update(f"{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())


@functools.lru_cache(maxsize=None)
def _source_of(cls: type) -> str:
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):  # defined in a REPL or built in
        return f"{cls.__module__}.{cls.__qualname__}"


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 of a model's architecture (its modules and their code) and every tensor of its state_dict.

    Two models with equal weights but another activation (a module swapped,
    or a different ``forward``) get different fingerprints.

    Examples
    --------
    >>> from torch import nn
    >>> from tlhelpers.features import model_fingerprint
    >>> a = nn.Sequential(nn.Linear(2, 2), nn.ReLU()); b = nn.Sequential(nn.Linear(2, 2), nn.GELU())
    >>> b[0].load_state_dict(a[0].state_dict())
    <All keys matched successfully>
    >>> model_fingerprint(a) == model_fingerprint(b)
    False
    """
    h = hashlib.sha256(repr(model).encode())
    for cls in sorted({type(m) for m in model.modules()}, key=lambda c: f"{c.__module__}.{c.__qualname__}"):
        h.update(_source_of(cls).encode())
    state = model.state_dict()
    for k in state:
        h.update(k.encode())
    _hash_tensors(h, state.values())
    return h.hexdigest()


def _callable_fingerprint(fn) -> str:
    code = getattr(fn, "__code__", None)
    if code is None:
        return repr(fn)
    closure = [repr(c.cell_contents) for c in (fn.__closure__ or ())]
    return repr((fn.__qualname__, code.co_code.hex(), repr(code.co_consts), closure))


def _is_random(t) -> bool:
    name = type(t).__name__
    return name.startswith("Random") or name in RANDOM_TRANSFORMS


def transform_fingerprint(transform) -> str:
    """A description of a transform's configuration, for the cache key.

    ``Compose`` pipelines are read item by item; a ``Lambda`` contributes its
    function's code. Raises ``ValueError`` for a random transform (caching it
    would store one random draw).

    Examples
    --------
    >>> import torchvision.transforms as T
    >>> from tlhelpers.features import transform_fingerprint
    >>> transform_fingerprint(T.Lambda(lambda x: x + 1)) == transform_fingerprint(T.Lambda(lambda x: x * 2))
    False
    """
    if transform is None:
        return "None"
    if _is_random(transform):
        raise ValueError(f"the transform {type(transform).__name__} is random: caching its output would "
                         f"store one draw as if it were the data; use a deterministic transform for "
                         f"features, or pass cache=False")
    parts = getattr(transform, "transforms", None)
    if isinstance(parts, (list, tuple)):
        return f"{type(transform).__qualname__}[" + ",".join(transform_fingerprint(t) for t in parts) + "]"
    if type(transform).__name__ == "Lambda" and hasattr(transform, "lambd"):
        return "Lambda(" + _callable_fingerprint(transform.lambd) + ")"
    if not isinstance(transform, nn.Module) and inspect.isfunction(transform):
        return "function(" + _callable_fingerprint(transform) + ")"
    return f"{type(transform).__module__}.{type(transform).__qualname__}:{transform!r}"


def dataset_fingerprint(dataset: Dataset) -> str | None:
    """SHA-256 of a dataset's content and transform, or ``None`` when it cannot be read without loading it.

    Understood: ``TensorDataset``, ``Subset``, datasets with ``images`` and
    ``targets`` arrays (``tlhelpers.data.ArrayDataset``), datasets with
    ``samples`` of ``(path, label)`` (image folders: each file's bytes are
    hashed), and any dataset with a ``fingerprint()`` method.

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
    if callable(getattr(dataset, "fingerprint", None)):
        h.update(str(dataset.fingerprint()).encode())
    elif isinstance(dataset, Subset):
        inner = dataset_fingerprint(dataset.dataset)
        if inner is None:
            return None
        h.update(inner.encode())
        h.update(json.dumps([int(i) for i in dataset.indices]).encode())
    elif isinstance(dataset, TensorDataset):
        _hash_tensors(h, dataset.tensors)
    elif isinstance(getattr(dataset, "images", None), np.ndarray) and hasattr(dataset, "targets"):
        _hash_tensors(h, [torch.from_numpy(np.ascontiguousarray(dataset.images)),
                          torch.as_tensor(np.asarray(dataset.targets))])
    elif hasattr(dataset, "samples"):
        for path, target in dataset.samples:
            h.update(os.fsencode(path) + f"|{sha256_file(path)}|{target}\n".encode())
    else:
        return None
    h.update(transform_fingerprint(getattr(dataset, "transform", None)).encode())
    h.update(transform_fingerprint(getattr(dataset, "target_transform", None)).encode())
    return h.hexdigest()


class AugmentedViews(Dataset):
    """``views`` reproducible random augmentations of every item of ``dataset``.

    Item ``v * len(dataset) + i`` is view ``v`` of item ``i``: ``transform``
    applied to ``dataset[i]``'s input with the random generators seeded from
    ``(seed, v, i)``, so the same view is drawn on every run and on every
    machine with the same torch version (and the caller's own random state is
    left untouched). That makes a random augmentation safe to cache:
    :func:`extract_features` on these views stores ``views`` fixed draws per
    image, which is how a frozen backbone's features can be augmented at all.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from torchvision.transforms import v2
    >>> from tlhelpers.features import AugmentedViews
    >>> base = TensorDataset(torch.arange(16.).reshape(1, 1, 4, 4).repeat(3, 1, 1, 1), torch.tensor([0, 1, 2]))
    >>> views = AugmentedViews(base, v2.RandomCrop(2), views=2, seed=0)
    >>> len(views), views[4][1].item()                 # view 1 of item 1
    (6, 1)
    >>> torch.equal(views[4][0], views[4][0]), torch.equal(views[1][0], views[4][0])
    (True, False)
    """

    def __init__(self, dataset: Dataset, transform, *, views: int, seed: int = 0):
        if not isinstance(views, int) or views < 1:
            raise ValueError(f"views must be a positive whole number of augmented copies per item, not {views!r}")
        if transform is None or not callable(transform):
            raise TypeError(f"transform must be a callable augmentation, not {transform!r}")
        # stored as ``augment``, not ``transform``: a ``transform`` attribute is read (and a random
        # one refused) by dataset_fingerprint, while these draws are seeded and safe to cache
        self.dataset, self.augment, self.views, self.seed = dataset, transform, views, int(seed)

    def __len__(self) -> int:
        return self.views * len(self.dataset)

    def __getitem__(self, k: int):
        if not -len(self) <= k < len(self):
            raise IndexError(f"index {k} out of range for {len(self)} views")
        view, i = divmod(k % len(self), len(self.dataset))
        x, y = B.split(self.dataset[i])
        state = int(np.random.SeedSequence([self.seed, view, i]).generate_state(1)[0])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(state)
            x = self.augment(x)
        return x if y is None else (x, y)

    def fingerprint(self) -> str | None:
        inner = dataset_fingerprint(self.dataset)
        if inner is None:
            return None
        return json.dumps([inner, repr(self.augment), self.views, self.seed, torch.__version__])


def _pool(x: torch.Tensor, pool: str | None, layer: str) -> torch.Tensor:
    x = _as_tensor(x)
    if pool is None:
        return x
    if x.dim() <= 2:
        if pool == "avg":  # already a vector per example (a pooled layer, a classifier)
            return x
        raise ValueError(f"layer {layer!r} outputs vectors {tuple(x.shape)}: there is no map to "
                         f"{pool}-pool; use pool='avg' (returns it as it is) or pool=None for this layer")
    if x.dim() == 3:  # (N, tokens, dim) transformer output
        if pool == "cls":
            return x[:, 0]
        if pool in ("avg", "max"):
            return x.mean(1) if pool == "avg" else x.amax(1)
        raise ValueError(f"pool={pool!r} does not apply to token sequences {tuple(x.shape)} "
                         f"(layer {layer!r}); use 'cls', 'avg' or 'max'")
    if pool == "avg":
        return x.mean(dim=tuple(range(2, x.dim())))
    if pool == "max":
        return x.amax(dim=tuple(range(2, x.dim())))
    if pool == "avgmax":
        return torch.cat([_pool(x, "avg", layer), _pool(x, "max", layer)], dim=1)
    if pool == "cls":
        raise ValueError(f"pool='cls' needs a token sequence (N, tokens, dim); layer {layer!r} gives "
                         f"maps {tuple(x.shape)}: use 'avg', 'max' or 'avgmax'")
    raise ValueError(f"pool must be one of {POOLS} or None, not {pool!r}")


def _check_pool(pool) -> None:
    pools = [pool] if pool is None or isinstance(pool, str) else list(pool)
    if not pools or any(p not in POOLS and not (p is None and len(pools) == 1) for p in pools):
        raise ValueError(f"pool must be one of {POOLS}, a list of them, or None, not {pool!r}")


def _as_tensor(out) -> torch.Tensor:
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out if isinstance(out, torch.Tensor) else B.logits(out)


def extract_features(model: nn.Module, dataset: Dataset, *, layers: Sequence[str] | None = None,
                     pool: str | Sequence[str] | None = "avg", batch_size: int = 32, num_workers: int = 0,
                     cache: bool | str | os.PathLike = True, channels_last: bool = True,
                     device: str | None = None, progress: bool = True
                     ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """Activations of ``layers`` for every item of ``dataset``, plus the labels.

    Called inside :func:`tlhelpers.settings.mixed_precision`, the forward pass
    computes in bfloat16 (EfficientNet-Lite0 and Lite2 ran 3.0 and 2.3 times faster
    on the book's CPU, which has bfloat16 units);
    the features are still pooled and returned in float32, and they are cached
    apart from float32 ones.

    Parameters
    ----------
    model : nn.Module
        The (frozen) network; it is put in eval mode and run without gradients.
    dataset : Dataset
        Yields ``(input, label)`` or just inputs (tensors, or dicts from a
        tokenizer); its content and transform are part of the cache key.
    layers : list of str, optional
        Module names (as in ``model.named_modules()``) whose outputs to keep,
        and/or ``"penultimate"`` (the input of the classifier head, the
        default).
    pool : {"avg", "max", "avgmax", "cls", None} or a list of them
        How to reduce spatial maps (N, C, H, W) to vectors: average, maximum,
        both concatenated (``[avg, max]``, twice the channels), or ``None`` to
        keep full maps; for token sequences (N, tokens, dim): ``"cls"`` (the
        first token), ``"avg"`` or ``"max"`` over tokens. A list returns each
        pooling on its own key ``"layer/avg"``, ``"layer/max"``; a layer that
        already outputs vectors is returned once, under its own name.
    batch_size, num_workers : int
        DataLoader settings.
    cache : bool or path
        ``True``: cache under ``$TLHELPERS_CACHE/features``; a path: cache
        there; ``False``: compute every time. A dataset whose content cannot be
        fingerprinted is computed without caching (with a warning); a random
        transform is refused. A cache that cannot be written is skipped with a
        warning; the features are still returned.
    channels_last : bool
        Run convolutions in channels-last memory layout (about 1.6x faster on
        CPUs; the model's weights change layout, not value).
    device : str, optional
        Default: :func:`tlhelpers.settings.get_device`.
    progress : bool
        Show a progress bar.

    Returns
    -------
    features : dict of str to Tensor
        One ``(N, ...)`` CPU tensor per layer (and pooling).
    labels : Tensor or None
        ``(N,)`` labels, or ``None`` for an unlabelled dataset.

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
    >>> f, _ = extract_features(m, ds, layers=["layer3"], pool=["avg", "max"], cache=False, progress=False)
    >>> sorted(f)
    ['layer3/avg', 'layer3/max']
    """
    from tqdm.auto import tqdm

    layers = list(layers or [PENULTIMATE])
    _check_pool(pool)
    dev = settings.get_device(device)
    # inside settings.mixed_precision (torch.autocast) the products run in bfloat16: other features, other key
    autocast = ([f"autocast {torch.get_autocast_dtype(dev.type)}"]
                if torch.is_autocast_enabled(dev.type) else [])
    cache_file = None
    if cache:
        data_key = dataset_fingerprint(dataset)
        if data_key is None:
            warnings.warn(f"cannot fingerprint a {type(dataset).__name__} without loading it, so its features "
                          f"are not cached; give it a fingerprint() method (or use an ImageFolder, "
                          f"ArrayDataset or TensorDataset) to cache them", stacklevel=2)
        else:
            root = settings.cache_dir() / "features" if cache is True else Path(cache)
            key = hashlib.sha256(json.dumps(
                [model_fingerprint(model), data_key, layers, pool, 2, *autocast]).encode()).hexdigest()
            cache_file = root / f"{key[:32]}.pt"
            if cache_file.exists():
                try:
                    stored = torch.load(cache_file, map_location="cpu", weights_only=True)
                    return stored["features"], stored["labels"]
                except Exception:  # an unreadable cache entry is recomputed, never fatal
                    with contextlib.suppress(OSError):
                        cache_file.unlink(missing_ok=True)

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
    collected: dict[str, list[torch.Tensor]] = {}
    labels = []
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                        pin_memory=dev.type == "cuda")
    try:
        with torch.no_grad():
            for step, batch in enumerate(tqdm(loader, desc="features", disable=not progress, leave=False)):
                outputs.clear()
                x, y = B.split(batch)
                x = B.to_device(x, dev, non_blocking=True)
                B.check_finite(x, where=f" (batch {step})")
                if channels_last and isinstance(x, torch.Tensor) and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                B.forward(model, x)
                for layer in layers:
                    out = outputs[layer]
                    if isinstance(pool, (str, type(None))):
                        parts = [(layer, pool)]
                    elif _as_tensor(out).dim() <= 2:  # already one vector per example
                        parts = [(layer, "avg")]
                    else:
                        parts = [(f"{layer}/{p}", p) for p in pool]
                    for key, p in parts:
                        # pooled in float32: a bfloat16 mean over a map would round at every addition
                        collected.setdefault(key, []).append(_pool(_as_tensor(out).float(), p, layer).cpu().contiguous())
                if y is not None:
                    labels.append(torch.as_tensor(y))
    finally:
        for hk in hooks:
            hk.remove()
        model.train(was_training)
    features = {n: torch.cat(v) for n, v in collected.items()}
    label_tensor = torch.cat(labels).long() if labels else None
    if cache_file is not None:
        try:
            save_torch({"features": features, "labels": label_tensor}, cache_file)
        except OSError as exc:
            warnings.warn(f"could not write the feature cache {cache_file} ({exc}); returning the features "
                          f"uncached. Point TLHELPERS_CACHE at a writable folder to cache them", stacklevel=2)
    return features, label_tensor
