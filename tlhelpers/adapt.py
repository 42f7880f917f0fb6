"""Domain adaptation (transductive transfer): same task, new input distribution.

Source examples are labelled, target examples are not (their labels are used
only to evaluate). The pieces, each a plain function or ``nn.Module``:

- :func:`adabn` -- re-estimate BatchNorm statistics on the target (Li et al. 2016);
- :func:`coral_loss` -- align feature covariances (Deep CORAL, Sun & Saenko 2016);
- :func:`mmd_loss` -- multi-kernel Gaussian maximum mean discrepancy (DAN, Long et al. 2015);
- :class:`GradientReversal`, :func:`domain_discriminator`, :func:`dann_lambda` --
  adversarial alignment (DANN, Ganin & Lempitsky 2015);
- :func:`pseudo_labels` -- confident target predictions for self-training;
- :func:`fit_adapt` -- trains a feature extractor and a classifier on a labelled
  source loader and an unlabelled target loader with any of them: the book's
  :func:`tlhelpers.train.train_one_epoch` with a step function that adds the
  alignment term to the source cross-entropy.
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from . import batch as B
from . import settings
from .batch import to_numpy as _np
from .evaluate import accuracy, predict
from .train import train_one_epoch

METHODS = ("source_only", "coral", "mmd", "dann", "self_training")


def coral_loss(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Deep CORAL loss: squared Frobenius distance of the two feature covariances / (4 d²).

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.adapt import coral_loss
    >>> x = torch.randn(32, 4)
    >>> float(coral_loss(x, x))
    0.0
    """
    d = source.shape[1]
    cs, ct = torch.cov(source.T), torch.cov(target.T)
    return ((cs - ct) ** 2).sum() / (4 * d * d)


def _inputs(batch, device) -> torch.Tensor:
    """The inputs of a batch that may or may not carry labels, on ``device``."""
    return B.to_device(B.split(batch)[0], device)


def _bandwidths(x: torch.Tensor, y: torch.Tensor, num_kernels: int, kernel_mul: float) -> torch.Tensor:
    """Bandwidths spread around the mean pairwise squared distance (the DAN heuristic)."""
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).pow(2)
    n = z.shape[0]
    base = d2.sum().detach() / (n * n - n)
    base = base / kernel_mul ** (num_kernels // 2)
    return torch.stack([base * kernel_mul ** i for i in range(num_kernels)])


def mmd_loss(source: torch.Tensor, target: torch.Tensor, *, bandwidths: torch.Tensor | list[float] | None = None,
             num_kernels: int = 5, kernel_mul: float = 2.0) -> torch.Tensor:
    """Squared MMD with a sum of Gaussian kernels (biased estimator).

    ``k(a, b) = sum_s exp(-|a - b|² / s)`` over the bandwidths ``s``; by
    default ``num_kernels`` bandwidths spaced by ``kernel_mul`` around the
    mean squared distance of the batch.

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.adapt import mmd_loss
    >>> x = torch.zeros(3, 2); y = torch.ones(3, 2)
    >>> round(float(mmd_loss(x, y, bandwidths=[2.0])), 4)  # 1 + 1 - 2 exp(-1)
    1.2642
    """
    if bandwidths is None:
        bw = _bandwidths(source, target, num_kernels, kernel_mul)
    else:
        bw = torch.as_tensor(bandwidths, dtype=source.dtype, device=source.device)

    def k(a, b):
        d2 = torch.cdist(a, b).pow(2)
        return sum(torch.exp(-d2 / s) for s in bw)

    return k(source, source).mean() + k(target, target).mean() - 2 * k(source, target).mean()


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lambda_):
        ctx.lambda_ = lambda_
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.lambda_ * grad, None


class GradientReversal(nn.Module):
    """Identity forward; multiplies the gradient by ``-lambda_`` backward (DANN).

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.adapt import GradientReversal
    >>> x = torch.ones(2, requires_grad=True)
    >>> GradientReversal(lambda_=0.5)(x).sum().backward()
    >>> x.grad.tolist()
    [-0.5, -0.5]
    """

    def __init__(self, *, lambda_: float = 1.0) -> None:
        super().__init__()
        self.lambda_ = lambda_

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ReverseGrad.apply(x, self.lambda_)


def dann_lambda(progress: float, *, gamma: float = 10.0) -> float:
    """DANN's schedule for the reversal weight: ``2 / (1 + exp(-gamma p)) - 1``, from 0 to ~1.

    Examples
    --------
    >>> from tlhelpers.adapt import dann_lambda
    >>> dann_lambda(0.0), round(dann_lambda(1.0), 4)
    (0.0, 0.9999)
    """
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


def domain_discriminator(in_features: int, *, hidden: int = 256) -> nn.Sequential:
    """A small MLP that predicts source (0) vs target (1) from features.

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.adapt import domain_discriminator
    >>> domain_discriminator(8)(torch.zeros(4, 8)).shape
    torch.Size([4, 1])
    """
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 1))


@torch.no_grad()
def adabn(model: nn.Module, target_loader: DataLoader, *, device: str | None = None) -> nn.Module:
    """AdaBN: replace every BatchNorm layer's running statistics by the target domain's.

    Only running means and variances change; weights do not. The model is left
    in eval mode.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> from tlhelpers.adapt import adabn
    >>> m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    >>> _ = adabn(m, DataLoader(TensorDataset(torch.randn(64, 2) + 5), batch_size=16))
    >>> bool(m[1].running_mean.abs().sum() > 0)
    True
    """
    dev = settings.get_device(device)
    model.to(dev)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all target batches
    model.train()
    for batch in target_loader:
        model(_inputs(batch, dev))
    for m, mom in zip(bns, saved):
        m.momentum = mom
    return model.eval()


@torch.no_grad()
def pseudo_labels(model: nn.Module, loader: DataLoader, *, threshold: float = 0.9,
                  device: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices and predicted labels of the examples the model is at least ``threshold`` sure of.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> from tlhelpers.adapt import pseudo_labels
    >>> x = torch.tensor([[5.0, 0.0], [0.1, 0.0]])
    >>> idx, lab = pseudo_labels(nn.Identity(), DataLoader(TensorDataset(x)), threshold=0.9)
    >>> idx.tolist(), lab.tolist()
    ([0], [0])
    """
    dev = settings.get_device(device)
    model.eval().to(dev)
    probs = []
    for batch in loader:
        probs.append(model(_inputs(batch, dev)).softmax(1).cpu())
    p = torch.cat(probs)
    conf, lab = p.max(1)
    keep = torch.nonzero(conf >= threshold).flatten()
    return keep, lab[keep]


def proxy_a_distance(source_features, target_features, *, seed: int = 0) -> float:
    """Proxy A-distance (Ben-David et al. 2007): ``2 (1 - 2 err)`` of a source-vs-target classifier.

    A linear classifier (logistic regression) is trained on half of each
    domain's features to tell the domains apart and tested on the other half.
    About 0 when the domains are indistinguishable, 2 when perfectly separable.

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.adapt import proxy_a_distance
    >>> a = torch.randn(200, 4); b = torch.randn(200, 4) + 10
    >>> round(proxy_a_distance(a, b), 1)
    2.0
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    fs, ft = _np(source_features), _np(target_features)
    x = np.concatenate([fs, ft]).reshape(len(fs) + len(ft), -1)
    d = np.concatenate([np.zeros(len(fs)), np.ones(len(ft))])
    x_tr, x_te, d_tr, d_te = train_test_split(x, d, test_size=0.5, random_state=seed, stratify=d)
    scaler = StandardScaler().fit(x_tr)
    clf = LogisticRegression(max_iter=2000).fit(scaler.transform(x_tr), d_tr)
    err = 1.0 - clf.score(scaler.transform(x_te), d_te)
    return 2.0 * (1.0 - 2.0 * err)


def fit_adapt(features: nn.Module, classifier: nn.Module, source_loader: DataLoader,
              target_loader: DataLoader, *, method: str = "dann", epochs: int = 10, lr: float = 1e-3,
              weight: float = 1.0, threshold: float = 0.9, feature_dim: int | None = None,
              eval_loader: DataLoader | None = None, device: str | None = None, seed: int | None = None,
              channels_last: bool = False, progress: bool = True) -> pd.DataFrame:
    """Train ``classifier(features(x))`` on labelled source batches, aligned to unlabelled target batches.

    Parameters
    ----------
    features, classifier : nn.Module
        The feature extractor and the head (logits).
    source_loader : DataLoader
        ``(x, y)`` labelled source batches; one epoch is one pass over it.
    target_loader : DataLoader
        Target batches (labels, if present, are ignored); cycled as needed.
    method : {"source_only", "coral", "mmd", "dann", "self_training"}
        The alignment term added to the source cross-entropy.
    weight : float
        Weight of the alignment (or pseudo-label) term.
    threshold : float
        Confidence for self-training's pseudo-labels (re-computed every epoch).
    feature_dim : int, optional
        Output size of ``features``; needed for ``"dann"``'s discriminator.
    eval_loader : DataLoader, optional
        Labelled target data for the history's ``target_accuracy`` column
        (evaluation only; never used for training).
    channels_last : bool
        Run convolutions in channels-last memory layout, source and target
        batches alike (often faster on CPUs; the weights change layout, not
        value).

    Returns
    -------
    pandas.DataFrame
        One row per epoch: ``epoch, source_loss, align_loss, target_accuracy, seconds``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> from tlhelpers.adapt import fit_adapt
    >>> xs = torch.randn(64, 2); ys = (xs[:, 0] > 0).long()
    >>> src = DataLoader(TensorDataset(xs, ys), batch_size=16, shuffle=True)
    >>> tgt = DataLoader(TensorDataset(xs + 0.5, ys), batch_size=16, shuffle=True)
    >>> h = fit_adapt(nn.Linear(2, 4), nn.Linear(4, 2), src, tgt, method="coral", epochs=2, progress=False)
    >>> list(h.columns)
    ['epoch', 'source_loss', 'align_loss', 'target_accuracy', 'seconds']
    """
    from tqdm.auto import tqdm

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    if seed is not None:
        settings.seed_everything(seed)
    dev = settings.get_device(device)
    features.to(dev)
    classifier.to(dev)
    if channels_last:
        features.to(memory_format=torch.channels_last)
        classifier.to(memory_format=torch.channels_last)

    def layout(x: torch.Tensor) -> torch.Tensor:
        """Target images in the layout of the source batches (train_one_epoch converts those)."""
        return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x

    params = list(features.parameters()) + list(classifier.parameters())
    disc = grl = None
    if method == "dann":
        if feature_dim is None:
            raise ValueError("method='dann' needs feature_dim (the size of features(x))")
        disc, grl = domain_discriminator(feature_dim).to(dev), GradientReversal()
        params += list(disc.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    ce = nn.CrossEntropyLoss()
    total_steps = epochs * len(source_loader)
    counter = {"step": 0}
    model = nn.Sequential(features, classifier)  # trained by train.train_one_epoch through step_fn
    rows = []
    target_iter = itertools.cycle(target_loader)
    pseudo: dict[int, int] = {}
    for epoch in tqdm(range(epochs), desc=method, disable=not progress):
        t0 = time.perf_counter()
        if method == "self_training":  # refresh pseudo-labels at the start of every epoch
            net = nn.Sequential(features, classifier)
            ordered = DataLoader(target_loader.dataset, batch_size=256)
            idx, lab = pseudo_labels(net, ordered, threshold=threshold, device=dev)
            pseudo = dict(zip(idx.tolist(), lab.tolist()))
        model.train()
        sums = np.zeros(2)

        def step_fn(_model, batch, pseudo=pseudo):
            """Source cross-entropy plus the method's alignment term, for one source batch."""
            xs, ys = B.split(batch)
            fs = features(xs)
            loss_src = ce(classifier(fs), ys)
            align = torch.zeros((), device=dev)
            if method in {"coral", "mmd", "dann"}:
                ft = features(layout(_inputs(next(target_iter), dev)))
                if method == "coral":
                    align = coral_loss(fs, ft)
                elif method == "mmd":
                    align = mmd_loss(fs, ft)
                else:
                    grl.lambda_ = dann_lambda(counter["step"] / max(1, total_steps))
                    logits = disc(grl(torch.cat([fs, ft]))).squeeze(1)
                    dom = torch.cat([torch.zeros(len(fs)), torch.ones(len(ft))]).to(dev)
                    align = nn.functional.binary_cross_entropy_with_logits(logits, dom)
            elif method == "self_training" and pseudo:
                keys = list(pseudo)
                pick = torch.as_tensor(keys)[torch.randint(len(keys), (len(xs),))]
                xt = torch.stack([target_loader.dataset[i][0] for i in pick.tolist()]).to(dev)
                yt = torch.as_tensor([pseudo[i] for i in pick.tolist()], device=dev)
                align = ce(classifier(features(layout(xt))), yt)
            counter["step"] += 1
            sums[0] += loss_src.item()
            sums[1] += float(align.detach())
            return loss_src + weight * align

        train_one_epoch(model, source_loader, opt, step_fn=step_fn, device=dev, epoch=epoch, progress=False,
                        channels_last=channels_last)
        row = {"epoch": epoch + 1, "source_loss": sums[0] / len(source_loader),
               "align_loss": sums[1] / len(source_loader), "target_accuracy": float("nan")}
        if eval_loader is not None:
            row["target_accuracy"] = target_accuracy(features, classifier, eval_loader, device=dev)
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
    return pd.DataFrame(rows)


def target_accuracy(features: nn.Module, classifier: nn.Module, loader: DataLoader,
                    *, device: str | torch.device | None = None) -> float:
    """Accuracy of ``classifier(features(x))`` on a labelled loader (evaluation only).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> from tlhelpers.adapt import target_accuracy
    >>> dl = DataLoader(TensorDataset(torch.eye(2), torch.tensor([0, 1])))
    >>> target_accuracy(nn.Identity(), nn.Identity(), dl)
    1.0
    """
    y_true, y_pred, _ = predict(nn.Sequential(features, classifier), loader, device=device)
    return accuracy(y_true, y_pred)
