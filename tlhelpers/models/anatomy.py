"""Model anatomy: where each family keeps its blocks and its classifier head.

One table, :data:`ANATOMIES`, declares per model family (matched by class):

- ``blocks``: the blocks from input to output as parameter-name prefixes, the
  head last -- what :func:`layer_groups`, ``freeze`` and ``param_groups`` cut at;
- ``heads``: the attribute path(s) of the final classifier ``nn.Linear``;
- ``reset``: the library's own way to swap the head, when it has one (timm's
  ``reset_classifier``);
- ``chain``: the modules in forward order, when the forward pass is a plain
  chain, so :func:`split_at` can cut the network into two ``nn.Sequential``.

A model of no listed family is read, in this order, through timm's
``get_classifier()`` / ``reset_classifier()`` if it has them, else its
top-level ``fc`` / ``classifier`` / ``head`` module if that ends in an
``nn.Linear``. Otherwise the head must be named explicitly
(``replace_head(model, 5, head="decoder.out")``): the last-defined Linear is
often not the classifier, so it is never guessed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

Blocks = list[tuple[str, list[str]]]
Chain = list[tuple[str, nn.Module]]


@dataclass(frozen=True)
class Anatomy:
    """How one model family is built: blocks, head, head replacement, forward chain."""

    family: str
    classes: tuple[str, ...]                                    # "module.Class" names this entry describes
    blocks: Callable[[nn.Module], Blocks]                        # prefixes per block, input to head
    heads: Callable[[nn.Module], list[str]]                      # paths of the classifier Linear(s), main first
    reset: Callable[[nn.Module, int], None] | None = None        # the library's own head swap
    chain: Callable[[nn.Module], Chain] | None = None            # forward order, for split_at


# --------------------------------------------------------------------------- per-family facts


def _stages(prefix: str, container: nn.Module) -> Blocks:
    return [(f"{prefix}.{n}", [f"{prefix}.{n}."]) for n, _ in container.named_children()]


def _last(path: str, seq: nn.Sequential) -> str:
    return f"{path}.{list(seq._modules)[-1]}"


def _timm_head(model: nn.Module) -> list[str]:
    clf = model.get_classifier()
    for name, m in model.named_modules():
        if m is clf and name:
            return [name]
    raise ValueError(f"{type(model).__name__}.get_classifier() returned {type(clf).__name__}, "
                     "which is not one of its submodules")


def _timm_reset(model: nn.Module, num_classes: int) -> None:
    model.reset_classifier(num_classes)


def _dropout(model: nn.Module) -> Chain:
    rate = float(getattr(model, "drop_rate", 0.0) or 0.0)
    return [("dropout", nn.Dropout(rate))] if rate > 0 else []


def _children(model: nn.Module, names: list[str]) -> Chain:
    return [(n, getattr(model, n)) for n in names]


def _seq_head(model: nn.Module) -> list[str]:
    path, m = [], model
    while isinstance(m, nn.Sequential) and len(m):
        name = list(m._modules)[-1]
        path.append(name)
        m = m._modules[name]
    if not isinstance(m, nn.Linear):
        raise _no_head(model)
    return [".".join(path)]


def _generic_blocks(model: nn.Module) -> Blocks:
    """Top-level children in definition order, then the head (when one can be found) as its own block."""
    blocks = [(n, [f"{n}."]) for n, m in model.named_children() if any(True for _ in m.parameters())]
    blocks += [(n, [n]) for n, _ in model.named_parameters(recurse=False)]
    try:
        head_paths = _find_heads(model)
    except ValueError:
        return blocks
    return blocks + [("head", [f"{p}." for p in head_paths])]


_HF_HEAD_NAMES = ("classifier", "score", "lm_head", "head", "fc")


def _hf_blocks(model: nn.Module) -> Blocks:
    """Hugging Face transformers: embeddings, each layer of the largest ModuleList, then the rest."""
    lists = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        return _generic_blocks(model)
    path, layers = max(lists, key=lambda nm: sum(p.numel() for p in nm[1].parameters()))
    names = [n for n, _ in model.named_parameters()]
    first = next(i for i, n in enumerate(names) if n.startswith(f"{path}."))
    inside = {n for n in names if n.startswith(f"{path}.")}
    before = names[:first]
    after = [n for n in names[first:] if n not in inside]
    return ([("embeddings", before)] + _stages(path, layers) + [("head", after)])


def _hf_heads(model: nn.Module) -> list[str]:
    for name in _HF_HEAD_NAMES:
        m = getattr(model, name, None)
        if isinstance(m, nn.Linear):
            return [name]
        if isinstance(m, nn.Module) and isinstance(getattr(m, "out_proj", None), nn.Linear):
            return [f"{name}.out_proj"]
    raise _no_head(model)


def _hf_reset(model: nn.Module, num_classes: int) -> None:
    _swap_linears(model, _hf_heads(model), num_classes)
    if hasattr(model, "num_labels"):
        model.num_labels = num_classes
    if getattr(model, "config", None) is not None:
        model.config.num_labels = num_classes


ANATOMIES: list[Anatomy] = [
    Anatomy("torchvision ResNet", ("torchvision.models.resnet.ResNet",),
            blocks=lambda m: [("stem", ["conv1.", "bn1."])] + [(f"layer{i}", [f"layer{i}."]) for i in range(1, 5)]
            + [("head", ["fc."])],
            heads=lambda m: ["fc"],
            chain=lambda m: _children(m, ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                                          "avgpool"]) + [("flatten", nn.Flatten(1)), ("fc", m.fc)]),
    Anatomy("torchvision VGG", ("torchvision.models.vgg.VGG",),
            blocks=lambda m: _vgg_blocks(m),
            heads=lambda m: [_last("classifier", m.classifier)],
            chain=lambda m: _children(m, ["features", "avgpool"]) + [("flatten", nn.Flatten(1)),
                                                                      ("classifier", m.classifier)]),
    Anatomy("torchvision Inception v3", ("torchvision.models.inception.Inception3",),
            blocks=lambda m: _inception_blocks(m),
            heads=lambda m: ["fc"] + (["AuxLogits.fc"] if getattr(m, "AuxLogits", None) is not None else [])),
    Anatomy("torchvision MobileNetV3 / EfficientNet",
            ("torchvision.models.mobilenetv3.MobileNetV3", "torchvision.models.efficientnet.EfficientNet"),
            blocks=lambda m: [("stem", ["features.0."])] + _stages("features", m.features)[1:]
            + [("classifier", [f"classifier.{j}." for j in range(len(m.classifier) - 1)]),
               ("head", [f"{_last('classifier', m.classifier)}."])],
            heads=lambda m: [_last("classifier", m.classifier)],
            chain=lambda m: _children(m, ["features", "avgpool"]) + [("flatten", nn.Flatten(1)),
                                                                      ("classifier", m.classifier)]),
    Anatomy("torchvision ViT", ("torchvision.models.vision_transformer.VisionTransformer",),
            blocks=lambda m: [("stem", ["conv_proj.", "class_token", "encoder.pos_embedding"])]
            + [(n, [f"encoder.layers.{n}."]) for n, _ in m.encoder.layers.named_children()]
            + [("head", ["encoder.ln.", "heads."])],
            heads=lambda m: [_last("heads", m.heads)]),
    Anatomy("timm EfficientNet (incl. -Lite)", ("timm.models.efficientnet.EfficientNet",),
            blocks=lambda m: [("stem", ["conv_stem.", "bn1."])] + _stages("blocks", m.blocks)
            + [("conv_head", ["conv_head.", "bn2."]), ("head", ["classifier."])],
            heads=_timm_head, reset=_timm_reset,
            chain=lambda m: _children(m, ["conv_stem", "bn1", "blocks", "conv_head", "bn2", "global_pool"])
            + _dropout(m) + [("classifier", m.classifier)]),
    Anatomy("timm MobileNetV3", ("timm.models.mobilenetv3.MobileNetV3",),
            blocks=lambda m: [("stem", ["conv_stem.", "bn1."])] + _stages("blocks", m.blocks)
            + [("conv_head", ["conv_head.", "norm_head."]), ("head", ["classifier."])],
            heads=_timm_head, reset=_timm_reset,
            chain=lambda m: _children(m, ["conv_stem", "bn1", "blocks", "global_pool", "conv_head", "norm_head",
                                          "act2", "flatten"]) + _dropout(m) + [("classifier", m.classifier)]),
    Anatomy("timm ViT", ("timm.models.vision_transformer.VisionTransformer",),
            blocks=lambda m: [("stem", ["cls_token", "reg_token", "pos_embed", "patch_embed.", "norm_pre."])]
            + _stages("blocks", m.blocks) + [("head", ["norm.", "fc_norm.", "attn_pool.", "head."])],
            heads=_timm_head, reset=_timm_reset),
    Anatomy("nn.Sequential (small_cnn)", ("torch.nn.modules.container.Sequential",),
            blocks=_generic_blocks, heads=_seq_head,
            chain=lambda m: list(m.named_children())),
    Anatomy("Hugging Face transformers", ("transformers.modeling_utils.PreTrainedModel",),
            blocks=_hf_blocks, heads=_hf_heads, reset=_hf_reset),
]

_GENERIC = Anatomy("any other nn.Module", (), blocks=_generic_blocks, heads=lambda m: _find_heads(m))


def _vgg_blocks(model: nn.Module) -> Blocks:
    groups, start = [], 0
    for i, m in enumerate(model.features):
        if isinstance(m, nn.MaxPool2d):
            groups.append((f"features.{start}-{i}", [f"features.{j}." for j in range(start, i + 1)]))
            start = i + 1
    n = len(model.classifier)
    return groups + [("classifier", [f"classifier.{j}." for j in range(n - 1)]), ("head", [f"classifier.{n - 1}."])]


def _inception_blocks(model: nn.Module) -> Blocks:
    names = [n for n, _ in model.named_children() if n not in {"fc", "AuxLogits"}]
    stem = [n for n in names if not n.startswith("Mixed")]
    mixed = [n for n in names if n.startswith("Mixed")]
    return ([("stem", [f"{n}." for n in stem])] + [(n, [f"{n}."]) for n in mixed]
            + [("head", ["fc.", "AuxLogits."])])


def _no_head(model: nn.Module) -> ValueError:
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return ValueError(
        f"cannot tell which layer of {type(model).__name__} is the classifier head: it has no "
        "get_classifier()/reset_classifier(), and no top-level 'fc', 'classifier' or 'head' ending in an "
        f"nn.Linear. Name it explicitly, e.g. replace_head(model, num_classes, head={(linears or ['my.fc'])[-1]!r}) "
        f"(its Linear layers: {', '.join(linears[:8]) or 'none'})")


def _find_heads(model: nn.Module) -> list[str]:
    if callable(getattr(model, "get_classifier", None)):
        return _timm_head(model)
    for name in ("fc", "classifier", "head"):
        m = getattr(model, name, None)
        if isinstance(m, nn.Linear):
            return [name]
        if isinstance(m, nn.Sequential) and len(m):
            try:
                return [f"{name}.{_seq_head(m)[0]}"]
            except ValueError:
                pass
    raise _no_head(model)


def anatomy(model: nn.Module) -> Anatomy:
    """The :class:`Anatomy` entry that describes ``model`` (matched by class, most specific first).

    Examples
    --------
    >>> from tlhelpers.models import anatomy, small_cnn
    >>> anatomy(small_cnn(2)).family
    'nn.Sequential (small_cnn)'
    """
    for cls in type(model).__mro__:
        qualified = f"{cls.__module__}.{cls.__qualname__}"
        for entry in ANATOMIES:
            if qualified in entry.classes:
                return entry
    if callable(getattr(model, "reset_classifier", None)) and callable(getattr(model, "get_classifier", None)):
        return Anatomy("timm-style model", (), blocks=_generic_blocks, heads=_timm_head, reset=_timm_reset)
    return _GENERIC


# --------------------------------------------------------------------------- blocks


def _block_prefixes(model: nn.Module) -> Blocks:
    return anatomy(model).blocks(model)


def _owner(name: str, blocks: Blocks) -> int | None:
    """Index of the block that owns a parameter/buffer name; later blocks win (so a nested head is the head)."""
    for i in range(len(blocks) - 1, -1, -1):
        if any(name.startswith(p) or name == p.rstrip(".") for p in blocks[i][1]):
            return i
    return None


def layer_groups(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """Cut a network into blocks, from the input to the classifier head (last).

    Every parameter belongs to exactly one block. Families listed in
    :data:`ANATOMIES` are cut at their stages; any other network at its
    top-level children, with its head (when found) as a last block of its own.

    Parameters
    ----------
    model : nn.Module
        Any network.

    Returns
    -------
    list of (str, list of nn.Parameter)
        Block name and its parameters, input first; empty blocks left out.

    Examples
    --------
    >>> from tlhelpers.models import create_model, layer_groups
    >>> [name for name, _ in layer_groups(create_model("resnet18", pretrained=False))]
    ['stem', 'layer1', 'layer2', 'layer3', 'layer4', 'head']
    """
    blocks = _block_prefixes(model)
    groups: list[list[nn.Parameter]] = [[] for _ in blocks]
    missing = []
    for name, p in model.named_parameters():
        i = _owner(name, blocks)
        if i is None:
            missing.append(name)
        else:
            groups[i].append(p)
    if missing:
        raise ValueError(f"{type(model).__name__} ({anatomy(model).family}): parameters in no block: {missing[:5]}")
    return [(b, ps) for (b, _), ps in zip(blocks, groups) if ps]


def transfer_blocks(source: nn.Module, target: nn.Module, n: int, *, freeze_them: bool = True) -> nn.Module:
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
    owning = {_owner(name, blocks) for name, _ in target.named_parameters()}
    blocks = [b for i, b in enumerate(blocks) if i in owning]
    if not 0 <= n < len(blocks):
        raise ValueError(f"n must be between 0 and {len(blocks) - 1} (the head is not transferred), not {n}")
    src = source.state_dict()
    copied = {k: v for k, v in src.items() if (i := _owner(k, blocks)) is not None and i < n}
    target.load_state_dict(copied, strict=False)
    for name, p in target.named_parameters():
        if (i := _owner(name, blocks)) is not None and i < n:
            p.requires_grad_(not freeze_them)
    return target


# --------------------------------------------------------------------------- heads


def _head_paths(model: nn.Module, head: str | None = None) -> list[str]:
    if head is not None:
        if not isinstance(model.get_submodule(head), nn.Linear):
            raise ValueError(f"head={head!r} is a {type(model.get_submodule(head)).__name__}, not an nn.Linear")
        return [head]
    return anatomy(model).heads(model)


def _swap_linears(model: nn.Module, paths: list[str], num_classes: int) -> None:
    for path in paths:
        parent_path, _, attr = path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        old = getattr(parent, attr)
        if not isinstance(old, nn.Linear):
            raise ValueError(f"{type(model).__name__}.{path} is a {type(old).__name__}, not an nn.Linear")
        setattr(parent, attr, nn.Linear(old.in_features, num_classes, bias=old.bias is not None,
                                        device=old.weight.device, dtype=old.weight.dtype))


def replace_head(model: nn.Module, num_classes: int, *, head: str | None = None,
                 seed: int | None = None) -> nn.Module:
    """Swap the final classifier layer(s) for freshly initialised ones with ``num_classes`` outputs.

    Parameters
    ----------
    model : nn.Module
        A network of a family in :data:`ANATOMIES`, a timm model, or one
        with a top-level ``fc`` / ``classifier`` / ``head`` ending in a Linear.
    num_classes : int
        Outputs of the new head.
    head : str, optional
        Attribute path of the ``nn.Linear`` to replace, for models whose head
        cannot be found (e.g. ``"decoder.out"``).
    seed : int, optional
        Draw the new head's initial weights from this seed (the global random
        state is left as it was), so a run repeats exactly whatever ran before.

    Returns
    -------
    nn.Module
        The same model, changed in place.

    Examples
    --------
    >>> from tlhelpers.models import create_model, replace_head
    >>> replace_head(create_model("vgg16", pretrained=False), 5).classifier[-1].out_features
    5
    >>> a = replace_head(create_model("resnet18", pretrained=False), 3, seed=0).fc.weight
    >>> bool((a == replace_head(create_model("resnet18", pretrained=False), 3, seed=0).fc.weight).all())
    True
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, not {num_classes}")
    entry = anatomy(model)
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        if head is None and entry.reset is not None:
            entry.reset(model, num_classes)
        else:
            _swap_linears(model, _head_paths(model, head), num_classes)
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes
    return model


def head(model: nn.Module, *, path: str | None = None) -> nn.Linear:
    """The final classifier layer (for Inception v3 the main one, not the auxiliary).

    Parameters
    ----------
    model : nn.Module
        Any network :func:`replace_head` can read.
    path : str, optional
        Attribute path of the head, for models whose head cannot be found.

    Examples
    --------
    >>> from tlhelpers.models import create_model, head
    >>> head(create_model("resnet18", pretrained=False)).in_features
    512
    """
    return model.get_submodule(_head_paths(model, path)[0])


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


# --------------------------------------------------------------------------- splitting


def _module_name(path: str) -> str:
    return path.replace(".", "_")


def split_at(model: nn.Module, layer: str) -> tuple[nn.Sequential, nn.Sequential]:
    """Cut a network after ``layer`` into ``(body, rest)``, two ``nn.Sequential`` sharing its modules.

    ``rest(body(x))`` equals ``model(x)``. ``layer`` is a module path as in
    ``named_modules()`` (``"blocks.5"``, ``"layer3"``, ``"4.2"``); a container
    is opened as deep as that path needs. The modules are shared, not copied:
    ``copy.deepcopy(model)`` first to keep the original apart. Steps the
    library's ``forward`` does inline (flatten, timm's head dropout) become
    ``nn.Flatten`` / ``nn.Dropout`` modules in ``rest``, in the model's mode.

    Parameters
    ----------
    model : nn.Module
        A network whose forward pass is a plain chain (ResNet, VGG,
        MobileNetV3, EfficientNet from torchvision or timm, ``nn.Sequential``).
    layer : str
        The last module of ``body``.

    Returns
    -------
    body, rest : nn.Sequential
        Module names are the original paths with ``.`` replaced by ``_``.

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.models import small_cnn, split_at
    >>> net = small_cnn(10).eval()
    >>> body, rest = split_at(net, "4.2")      # features | the Linear classifier
    >>> x = torch.randn(2, 3, 32, 32)
    >>> body(x).shape, torch.allclose(rest(body(x)), net(x))
    (torch.Size([2, 128]), True)
    """
    entry = anatomy(model)
    if entry.chain is None:
        raise ValueError(f"{type(model).__name__} ({entry.family}) does not run as a plain chain of modules, "
                         "so it cannot be split into two nn.Sequential; read intermediate outputs with "
                         "features.extract_features(model, ..., layers=[...]) instead")
    chain = entry.chain(model)
    while layer not in [n for n, _ in chain]:
        outer = next(((i, n, m) for i, (n, m) in enumerate(chain) if layer.startswith(f"{n}.")), None)
        if outer is None or not isinstance(outer[2], nn.Sequential):
            known = [n for n, _ in chain]
            raise ValueError(f"layer {layer!r} is not on {type(model).__name__}'s forward chain; "
                             f"split points: {', '.join(known)} (or modules inside the Sequential ones)")
        i, n, m = outer
        chain[i:i + 1] = [(f"{n}.{c}", sub) for c, sub in m.named_children()]
    cut = [n for n, _ in chain].index(layer) + 1
    own = {id(m) for m in model.modules()}
    for _, m in chain:  # modules the chain adds (Flatten, Dropout) follow the model's train/eval mode
        if id(m) not in own:
            m.train(model.training)
    body = nn.Sequential(OrderedDict((_module_name(n), m) for n, m in chain[:cut]))
    rest = nn.Sequential(OrderedDict((_module_name(n), m) for n, m in chain[cut:]))
    body.training = rest.training = model.training
    return body, rest
