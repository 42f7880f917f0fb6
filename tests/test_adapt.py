import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tlhelpers import adapt


def test_coral_is_zero_for_identical_batches_and_grows_with_covariance_mismatch():
    torch.manual_seed(0)
    x = torch.randn(256, 3)
    assert adapt.coral_loss(x, x).item() == 0.0
    losses = [adapt.coral_loss(x, x * s).item() for s in (1.5, 2.0, 3.0)]
    assert 0 < losses[0] < losses[1] < losses[2]
    # hand computation: covariance scaled by s^2 -> ||(s^2 - 1) C||_F^2 / (4 d^2)
    c = torch.cov(x.T)
    assert losses[1] == pytest.approx((((4 - 1) * c) ** 2).sum().item() / 36, rel=1e-5)


def test_mmd_matches_hand_computation_and_is_small_for_one_distribution():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([[0.0, 2.0]])
    s = 2.0
    k = lambda d2: math.exp(-d2 / s)  # noqa: E731
    kxx = (k(0) + k(1) + k(1) + k(0)) / 4
    kyy = k(0)
    kxy = (k(4) + k(5)) / 2
    assert adapt.mmd_loss(x, y, bandwidths=[s]).item() == pytest.approx(kxx + kyy - 2 * kxy, rel=1e-6)
    torch.manual_seed(0)
    a, b = torch.randn(400, 5), torch.randn(400, 5)
    assert adapt.mmd_loss(a, b).item() < 0.02
    assert adapt.mmd_loss(a, b + 1.0).item() > 10 * adapt.mmd_loss(a, b).item()


def test_gradient_reversal_is_identity_forward_and_negates_scaled_gradients():
    x = torch.randn(4, 3, requires_grad=True)
    grl = adapt.GradientReversal(lambda_=0.3)
    y = grl(x)
    assert torch.equal(y, x)
    (y * torch.arange(3.0)).sum().backward()
    assert torch.allclose(x.grad, -0.3 * torch.arange(3.0).expand(4, 3))
    assert adapt.dann_lambda(0) == 0 and 0.99 < adapt.dann_lambda(1) < 1


def test_adabn_changes_only_batchnorm_running_statistics():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    target = DataLoader(TensorDataset(torch.randn(64, 1, 6, 6) * 3 + 2), batch_size=16)
    adapt.adabn(m, target)
    after = m.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"1.running_mean", "1.running_var", "1.num_batches_tracked"}
    assert not m.training
    # the statistics are the target's: the conv outputs' mean per channel
    x = torch.cat([b[0] for b in target])
    with torch.no_grad():
        assert torch.allclose(m[1].running_mean, m[0](x).mean((0, 2, 3)), atol=1e-4)


def test_pseudo_labels_threshold():
    logits = torch.tensor([[4.0, 0.0], [0.0, 0.1], [0.0, 5.0]])
    idx, lab = adapt.pseudo_labels(nn.Identity(), DataLoader(TensorDataset(logits), batch_size=2), threshold=0.9)
    assert idx.tolist() == [0, 2] and lab.tolist() == [0, 1]


@pytest.mark.parametrize("method", adapt.METHODS)
def test_fit_adapt_every_method_runs_and_reports(method):
    torch.manual_seed(0)
    xs = torch.randn(128, 2)
    ys = (xs[:, 0] > 0).long()
    xt = xs + torch.tensor([0.3, 0.0])
    src = DataLoader(TensorDataset(xs, ys), batch_size=32, shuffle=True)
    tgt = DataLoader(TensorDataset(xt, ys), batch_size=32, shuffle=True)
    h = adapt.fit_adapt(nn.Sequential(nn.Linear(2, 8), nn.ReLU()), nn.Linear(8, 2), src, tgt, method=method,
                        epochs=6, lr=3e-2, feature_dim=8, eval_loader=tgt, seed=0, progress=False)
    assert len(h) == 6 and h["target_accuracy"].iloc[-1] > 0.8


def test_fit_adapt_rejects_unknown_method_and_missing_dim():
    dl = DataLoader(TensorDataset(torch.randn(4, 2), torch.zeros(4).long()))
    with pytest.raises(ValueError, match="method must be one of"):
        adapt.fit_adapt(nn.Identity(), nn.Identity(), dl, dl, method="adda", progress=False)
    with pytest.raises(ValueError, match="feature_dim"):
        adapt.fit_adapt(nn.Identity(), nn.Identity(), dl, dl, method="dann", progress=False)


def test_proxy_a_distance_is_near_zero_for_one_distribution_and_two_for_separable():
    torch.manual_seed(0)
    a, b = torch.randn(400, 8), torch.randn(400, 8)
    assert abs(adapt.proxy_a_distance(a, b)) < 0.3
    assert adapt.proxy_a_distance(a, b + 5) == pytest.approx(2.0)


def test_alignment_terms_change_the_features_source_only_does_not_align():
    """Fails if fit_adapt ignores its alignment term: the aligned features must be closer across domains."""
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(256, 2, generator=g)
    ys = (xs[:, 0] > 0).long()
    xt = xs * torch.tensor([1.0, 3.0]) + torch.tensor([0.0, 4.0])  # shift along the irrelevant axis

    def run(method):
        torch.manual_seed(0)
        f, c = nn.Sequential(nn.Linear(2, 8), nn.ReLU()), nn.Linear(8, 2)
        src = DataLoader(TensorDataset(xs, ys), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
        tgt = DataLoader(TensorDataset(xt), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(1))
        h = adapt.fit_adapt(f, c, src, tgt, method=method, epochs=15, lr=1e-2, weight=5.0, feature_dim=8,
                            seed=0, progress=False)
        with torch.no_grad():
            gap = float(adapt.mmd_loss(f(xs), f(xt)))
        return h, gap

    h0, gap0 = run("source_only")
    assert (h0["align_loss"] == 0).all()
    for method in ["coral", "mmd"]:
        h, gap = run(method)
        assert (h["align_loss"] > 0).all(), method
        assert gap < 0.5 * gap0, (method, gap, gap0)


@pytest.mark.parametrize("method", ["coral", "dann", "self_training"])
def test_fit_adapt_channels_last_changes_layout_not_results(method):
    """channels_last is a layout choice only: both layouts train to the same weights and losses."""
    g = torch.Generator().manual_seed(0)
    xs, xt = torch.randn(64, 1, 8, 8, generator=g), torch.randn(64, 1, 8, 8, generator=g) + 0.5
    ys = (xs.mean((1, 2, 3)) > 0).long()

    def run(channels_last):
        torch.manual_seed(0)
        f = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        c = nn.Linear(4, 2)
        src = DataLoader(TensorDataset(xs, ys), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
        tgt = DataLoader(TensorDataset(xt), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(1))
        h = adapt.fit_adapt(f, c, src, tgt, method=method, epochs=2, lr=1e-2, feature_dim=4, threshold=0.5,
                            seed=0, channels_last=channels_last, progress=False)
        return h, f[0].weight

    (h0, w0), (h1, w1) = run(False), run(True)
    assert w1.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(w0, w1, atol=1e-4)
    assert np.allclose(h0["source_loss"], h1["source_loss"], atol=1e-4)
