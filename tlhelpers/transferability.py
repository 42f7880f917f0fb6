"""Transferability scores: rank pretrained models (or layers) for a target *before* fine-tuning.

Each score looks at a candidate's features (or its source-label predictions) on
the labelled target data once, with no training of the network:

- :func:`logme` -- log marginal evidence of a Bayesian linear model on the
  features (You et al., ICML 2021);
- :func:`h_score` -- ``tr(cov(f)^-1 cov(E[f | y]))`` (Bao et al., ICIP 2019),
  optionally with a shrunk covariance (Ibrahim et al., ICLR 2023);
- :func:`leep` -- log expected empirical prediction from the source classifier's
  soft predictions (Nguyen et al., ICML 2020);
- :func:`nce` -- negative conditional entropy of target labels given the source
  model's hard predictions (Tran et al., ICCV 2019).

Higher is better for all four. Inputs are numpy arrays or tensors.
"""

from __future__ import annotations

import numpy as np

from .batch import to_numpy as _np


def _joint(source_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Empirical joint P(y, z) from soft source predictions (rows) and target labels."""
    n = len(labels)
    classes = labels.max() + 1
    joint = np.zeros((classes, source_probs.shape[1]))
    np.add.at(joint, labels, source_probs)
    return joint / n


def leep(source_probs, labels) -> float:
    """LEEP: mean log-likelihood of the target labels under the "expected empirical predictor".

    Parameters
    ----------
    source_probs : array (n, Z)
        The source model's softmax over its own Z classes, on target inputs.
    labels : array (n,)
        Target labels 0..C-1.

    Examples
    --------
    >>> import numpy as np
    >>> from tlhelpers.transferability import leep
    >>> p = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> leep(p, np.array([0, 1]))  # source classes map one-to-one onto target classes
    0.0
    """
    theta, y = _np(source_probs).astype(float), _np(labels).astype(int)
    joint = _joint(theta, y)
    cond = joint / joint.sum(0, keepdims=True).clip(min=1e-12)      # P(y | z)
    eep = theta @ cond.T                                              # (n, C)
    return float(np.mean(np.log(eep[np.arange(len(y)), y].clip(min=1e-12))))


def nce(source_pred, labels) -> float:
    """NCE: ``-H(Y | Z)`` with Z the source model's hard predictions.

    Examples
    --------
    >>> import numpy as np
    >>> from tlhelpers.transferability import nce
    >>> nce(np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0]))  # Z determines Y
    0.0
    """
    z, y = _np(source_pred).astype(int), _np(labels).astype(int)
    joint = _joint(np.eye(z.max() + 1)[z], y)
    pz = joint.sum(0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log(joint / pz), 0.0)
    return float(terms.sum())


def h_score(features, labels, *, shrinkage: float | str | None = None) -> float:
    """H-score: ``tr(pinv(cov(f)) cov(E[f | y]))``, larger when class means are far apart.

    With more feature dimensions than samples the covariance is singular, any
    labelling is linearly separable, and the plain score reaches its ceiling
    (number of classes - 1) even for random features. ``shrinkage`` regularises
    the covariance towards a scaled identity, ``(1 - a) cov + a tr(cov)/d I``
    (Ibrahim et al., ICLR 2023): a number ``a`` in [0, 1], or ``"ledoit-wolf"``
    to estimate it from the data.

    Examples
    --------
    >>> import numpy as np
    >>> from tlhelpers.transferability import h_score
    >>> f = np.array([[0.0], [0.0], [2.0], [2.0]])
    >>> h_score(f, np.array([0, 0, 1, 1]))  # all variance is between classes
    1.0
    """
    f, y = _np(features).astype(float), _np(labels).astype(int)
    f = f - f.mean(0)
    cov_f = f.T @ f / len(f)
    if shrinkage is not None:
        if shrinkage == "ledoit-wolf":
            from sklearn.covariance import ledoit_wolf_shrinkage

            shrinkage = float(ledoit_wolf_shrinkage(f, assume_centered=True))
        if isinstance(shrinkage, str) or not 0.0 <= shrinkage <= 1.0:
            raise ValueError(f"shrinkage must be None, 'ledoit-wolf' or a number in [0, 1], not {shrinkage!r}")
        mu = np.trace(cov_f) / cov_f.shape[0]
        cov_f = (1 - shrinkage) * cov_f + shrinkage * mu * np.eye(cov_f.shape[0])
    class_means = np.stack([f[y == c].mean(0) for c in np.unique(y)])
    g = class_means[np.searchsorted(np.unique(y), y)]
    cov_g = g.T @ g / len(f)
    # Pseudo-inverse of the symmetric covariance through eigh: the same result as
    # np.linalg.pinv(cov_f, rcond=1e-10), without its SVD's occasional failure to
    # converge on rank-deficient matrices (more feature dimensions than samples).
    w, v = np.linalg.eigh(cov_f)
    keep = w > 1e-10 * max(w.max(), 0.0)
    inv = (v[:, keep] / w[keep]) @ v[:, keep].T
    return float(np.trace(inv @ cov_g))


def _evidence(sigma: np.ndarray, z2: np.ndarray, y2: float, n: int, d: int, alpha: float, beta: float) -> float:
    """Log evidence (per sample) of y ~ N(F w, 1/beta), w ~ N(0, 1/alpha), in SVD coordinates.

    ``sigma`` are the squared singular values of F (n x d); ``z2`` the squared
    coordinates of y on F's left singular vectors; ``y2 = |y|^2``.
    """
    m2 = np.sum(beta ** 2 * sigma * z2 / (alpha + beta * sigma) ** 2)        # |m|^2
    res2 = y2 - np.sum(z2) + np.sum(z2 * (alpha / (alpha + beta * sigma)) ** 2)  # |y - F m|^2
    ev = (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
          - beta / 2 * res2 - alpha / 2 * m2
          - (np.sum(np.log(alpha + beta * sigma)) + (d - len(sigma)) * np.log(alpha)) / 2)
    return float(ev / n)


def logme(features, labels, *, max_iter: int = 100, tol: float = 1e-5) -> float:
    """LogME: maximised log evidence of a linear model from features to one-hot labels, per sample.

    For each class, alpha (prior precision) and beta (noise precision) are set
    by MacKay's fixed-point iteration; the score is the mean over classes.

    Examples
    --------
    >>> import numpy as np
    >>> from tlhelpers.transferability import logme
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 50)
    >>> good = np.c_[y + 0.1 * rng.normal(size=100), rng.normal(size=100)]
    >>> bad = rng.normal(size=(100, 2))
    >>> logme(good, y) > logme(bad, y)
    True
    """
    f, y = _np(features).astype(float), _np(labels).astype(int)
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = s ** 2
    scores = []
    for c in np.unique(y):
        t = (y == c).astype(float)
        z = u.T @ t
        z2, y2 = z ** 2, float(t @ t)
        alpha, beta = 1.0, 1.0
        for _ in range(max_iter):
            gamma = np.sum(beta * sigma / (alpha + beta * sigma))
            m2 = np.sum(beta ** 2 * sigma * z2 / (alpha + beta * sigma) ** 2)
            res2 = y2 - np.sum(z2) + np.sum(z2 * (alpha / (alpha + beta * sigma)) ** 2)
            new_alpha, new_beta = gamma / max(m2, 1e-12), (n - gamma) / max(res2, 1e-12)
            done = abs(new_alpha - alpha) / alpha < tol and abs(new_beta - beta) / beta < tol
            alpha, beta = new_alpha, new_beta
            if done:
                break
        scores.append(_evidence(sigma, z2, y2, n, d, alpha, beta))
    return float(np.mean(scores))
