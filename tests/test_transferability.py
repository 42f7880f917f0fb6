import numpy as np
import pytest

from tlhelpers import transferability as tr


def test_leep_matches_hand_computation():
    theta = np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]])
    y = np.array([0, 1, 1])
    joint = np.zeros((2, 2))
    for t, label in zip(theta, y):
        joint[label] += t / 3
    cond = joint / joint.sum(0)
    expected = np.mean([np.log(sum(cond[label, z] * t[z] for z in range(2))) for t, label in zip(theta, y)])
    assert tr.leep(theta, y) == pytest.approx(expected)


def test_nce_matches_hand_computation():
    z = np.array([0, 0, 0, 1])
    y = np.array([0, 0, 1, 1])
    # P(z=0)=3/4 with y split 2:1; P(z=1)=1/4 with y=1
    expected = (2 / 4) * np.log(2 / 3) + (1 / 4) * np.log(1 / 3) + (1 / 4) * np.log(1.0)
    assert tr.nce(z, y) == pytest.approx(expected)


def test_h_score_matches_hand_computation():
    f = np.array([[0.0, 1.0], [1.0, 0.0], [3.0, 1.0], [4.0, 2.0]])
    y = np.array([0, 0, 1, 1])
    fc = f - f.mean(0)
    cov_f = fc.T @ fc / 4
    means = np.array([fc[:2].mean(0), fc[2:].mean(0)])
    g = means[y]
    expected = np.trace(np.linalg.inv(cov_f) @ (g.T @ g / 4))
    assert tr.h_score(f, y) == pytest.approx(expected)


def test_logme_evidence_matches_direct_formula_and_is_maximised():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(12, 3))
    t = (rng.random(12) > 0.5).astype(float)
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    z = u.T @ t

    def direct(alpha, beta):
        a = alpha * np.eye(d) + beta * f.T @ f
        m = beta * np.linalg.solve(a, f.T @ t)
        ev = (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
              - beta / 2 * np.sum((t - f @ m) ** 2) - alpha / 2 * m @ m - np.linalg.slogdet(a)[1] / 2)
        return ev / n

    for alpha, beta in [(1.0, 1.0), (0.3, 4.0), (5.0, 0.5)]:
        assert tr._evidence(s ** 2, z ** 2, t @ t, n, d, alpha, beta) == pytest.approx(direct(alpha, beta))
    y = t.astype(int)
    best = tr.logme(f, y)
    grid = [np.mean([direct_c for direct_c in [
        tr._evidence(s ** 2, (u.T @ (y == c)) ** 2, float((y == c).sum()), n, d, a, b) for c in (0, 1)]])
        for a in np.logspace(-2, 2, 9) for b in np.logspace(-2, 2, 9)]
    assert best >= max(grid) - 1e-6


def test_scores_rank_informative_features_above_noise():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 40)
    good = np.eye(3)[y] * 2 + rng.normal(scale=0.5, size=(120, 3))
    noise = rng.normal(size=(120, 3))
    assert tr.logme(good, y) > tr.logme(noise, y)
    assert tr.h_score(good, y) > tr.h_score(noise, y)
    probs_good = np.exp(good) / np.exp(good).sum(1, keepdims=True)
    probs_noise = np.exp(noise) / np.exp(noise).sum(1, keepdims=True)
    assert tr.leep(probs_good, y) > tr.leep(probs_noise, y)
    assert tr.nce(good.argmax(1), y) > tr.nce(noise.argmax(1), y)


def test_logme_evidence_with_more_dimensions_than_samples():
    rng = np.random.default_rng(2)
    f, t = rng.normal(size=(5, 8)), np.array([1.0, 0, 1, 0, 0])
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    a = 0.7 * np.eye(8) + 2.0 * f.T @ f
    m = 2.0 * np.linalg.solve(a, f.T @ t)
    direct = (5 / 2 * np.log(2.0) + 8 / 2 * np.log(0.7) - 5 / 2 * np.log(2 * np.pi) - np.sum((t - f @ m) ** 2)
              - 0.35 * m @ m - np.linalg.slogdet(a)[1] / 2) / 5
    assert tr._evidence(s ** 2, (u.T @ t) ** 2, t @ t, 5, 8, 0.7, 2.0) == pytest.approx(direct)
    assert np.isfinite(tr.logme(f, t.astype(int)))


def test_h_score_handles_wide_rank_deficient_features():
    # more dimensions than samples, constant and duplicated columns (saturated ReLU6 units do this)
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 10)
    f = np.c_[rng.normal(size=(30, 40)) + y[:, None], np.full((30, 5), 6.0), np.zeros((30, 5))]
    f = np.c_[f, f[:, :10]]
    score = tr.h_score(f, y)
    fc = f - f.mean(0)
    cov_f = fc.T @ fc / len(f)
    means = np.stack([fc[y == c].mean(0) for c in range(3)])[y]
    expected = np.trace(np.linalg.pinv(cov_f, rcond=1e-10, hermitian=True) @ (means.T @ means / len(f)))
    assert np.isfinite(score) and score == pytest.approx(expected, rel=1e-6)


def test_h_score_shrinkage():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 20)
    informative = np.c_[y[:, None] + 0.5 * rng.normal(size=(40, 3)), rng.normal(size=(40, 57))]
    noise = rng.normal(size=(40, 60))
    # plain H-score: d > n makes both look perfect (ceiling = classes - 1)
    assert tr.h_score(noise, y) == pytest.approx(1.0)
    assert tr.h_score(informative, y) == pytest.approx(1.0)
    # shrinkage separates them; a = 0 is the plain score; a = 1 uses the scaled identity
    assert tr.h_score(informative, y, shrinkage="ledoit-wolf") > 1.5 * tr.h_score(noise, y, shrinkage="ledoit-wolf")
    assert tr.h_score(informative[:, :3], y, shrinkage=0.0) == pytest.approx(tr.h_score(informative[:, :3], y))
    fc = informative - informative.mean(0)
    means = np.stack([fc[y == c].mean(0) for c in (0, 1)])[y]
    mu = np.trace(fc.T @ fc / 40) / 60
    assert tr.h_score(informative, y, shrinkage=1.0) == pytest.approx(np.trace(means.T @ means / 40) / mu)
    with pytest.raises(ValueError, match="shrinkage"):
        tr.h_score(noise, y, shrinkage=2.0)
