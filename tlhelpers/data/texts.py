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
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset


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
