"""Metrics in one place, on scikit-learn and SciPy.

Counting metrics (accuracy, precision, recall, F1, confusion matrix; ROC AUC; per pixel
for segmentation: :func:`pixel_confusion`, :func:`iou`; for detection:
:func:`detection_matches`, :func:`average_precision`),
uncertainty on one test set (:func:`bootstrap_ci`, :func:`paired_bootstrap`,
resampling examples or, with ``groups=``, whole groups of them;
:func:`mcnemar`, :func:`proportion_ci`) and over repeated runs
(:func:`paired_bootstrap_runs`), decision thresholds
(:func:`threshold_for_recall`, :func:`operating_point`) and calibration
(:func:`expected_calibration_error`, :func:`reliability_table`,
:func:`fit_temperature`, :func:`apply_temperature`). The functions take label
and probability arrays (numpy or torch) and return plain floats, dicts, numpy
arrays or DataFrames; :func:`predict` turns a model and a DataLoader into
those arrays.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn import metrics as skm
from torch import nn
from torch.utils.data import DataLoader

from . import batch as B
from . import settings
from .batch import to_numpy as _np


def predict(model: nn.Module, loader: DataLoader, *, device: str | None = None, progress: bool = False
            ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Run ``model`` over ``loader`` in eval mode.

    Batches may be labelled or not (:mod:`tlhelpers.batch`); inputs holding
    NaN or infinity raise instead of becoming a silent class 0.

    Returns
    -------
    y_true : ndarray of int, or None
        ``None`` when the loader yields no labels.
    y_pred : ndarray of int
    probs : ndarray of float, shape (N, classes)

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> from tlhelpers.evaluate import predict
    >>> dl = DataLoader(TensorDataset(torch.eye(2), torch.tensor([0, 1])))
    >>> y, p, prob = predict(nn.Identity(), dl)
    >>> p.tolist(), prob.shape
    ([0, 1], (2, 2))
    """
    from tqdm.auto import tqdm

    dev = settings.get_device(device)
    was_training = model.training
    model.eval().to(dev)
    ys, logits = [], []
    try:
        with torch.no_grad():
            for step, b in enumerate(tqdm(loader, desc="predict", disable=not progress, leave=False)):
                inputs, targets = B.split(B.to_device(b, dev))
                B.check_finite(inputs, where=f" (batch {step})")
                output = B.forward(model, inputs)
                out = B.logits(output)
                if out is None:
                    raise ValueError(f"the model's output ({type(output).__name__}) holds no logits")
                logits.append(out.float().cpu())
                if targets is not None:
                    ys.append(torch.as_tensor(targets).cpu())
    finally:
        model.train(was_training)
    if not logits:
        raise ValueError("the data loader yielded no batches")
    probs = torch.cat(logits).softmax(1).numpy()
    y_true = torch.cat(ys).numpy() if ys else None
    return y_true, probs.argmax(1), probs


def accuracy(y_true, y_pred) -> float:
    """Fraction of correct predictions.

    Examples
    --------
    >>> from tlhelpers.evaluate import accuracy
    >>> accuracy([0, 1, 1], [0, 1, 0])
    0.6666666666666666
    """
    yt, yp = _two_label_arrays(y_true, y_pred)
    return float(np.mean(yt == yp))


def balanced_accuracy(y_true, y_pred) -> float:
    """Mean recall over the classes present in ``y_true`` (scikit-learn's definition, in numpy).

    Every class counts the same however many examples it has, so on an
    imbalanced test set it does not reward always answering the big class.
    Equal to ``sklearn.metrics.balanced_accuracy_score``, about 20 times
    faster, which matters inside a bootstrap.

    Examples
    --------
    >>> from tlhelpers.evaluate import balanced_accuracy
    >>> balanced_accuracy([0, 0, 0, 1], [0, 0, 0, 0])   # all of class 0, none of class 1
    0.5
    """
    yt, yp = _two_label_arrays(y_true, y_pred)
    yt, yp = yt.astype(int), yp.astype(int)
    size = max(yt.max(), yp.max()) + 1
    total = np.bincount(yt, minlength=size)
    hits = np.bincount(yt[yt == yp], minlength=size)
    present = total > 0
    return float((hits[present] / total[present]).mean())


def macro_f1(y_true, y_pred) -> float:
    """F1 averaged over the classes in ``y_true`` or ``y_pred``, each counting the same (in numpy).

    Equal to ``sklearn.metrics.f1_score(..., average="macro")``, about 50
    times faster, which matters inside a bootstrap. A class that is predicted
    but never true scores 0, as in scikit-learn.

    Examples
    --------
    >>> from tlhelpers.evaluate import macro_f1
    >>> round(macro_f1([0, 0, 1, 1], [0, 1, 1, 1]), 3)   # F1 2/3 for class 0, 4/5 for class 1
    0.733
    """
    yt, yp = _two_label_arrays(y_true, y_pred)
    _, index = np.unique(np.concatenate([yt, yp]), return_inverse=True)
    t, p = index[:len(yt)], index[len(yt):]
    size = index.max() + 1
    hits = np.bincount(t[t == p], minlength=size)
    # F1 = 2 TP / (2 TP + FP + FN), and 2 TP + FP + FN = (times true) + (times predicted)
    return float((2 * hits / (np.bincount(t, minlength=size) + np.bincount(p, minlength=size))).mean())


def roc_auc(y_true, scores) -> float:
    """Area under the ROC curve of a binary problem, from ranks (in NumPy and SciPy).

    The probability that a random positive example (the larger label) scores
    above a random negative one, ties counting half: the Mann-Whitney U
    statistic divided by the number of pairs. Equal to
    ``sklearn.metrics.roc_auc_score``, about 20 times faster, which matters
    inside a bootstrap.

    Examples
    --------
    >>> from tlhelpers.evaluate import roc_auc
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])   # 3 of the 4 (positive, negative) pairs in order
    0.75
    """
    from scipy.stats import rankdata

    yt, s = _labels_and(y_true, scores, "scores")
    s = np.asarray(s, dtype=float)
    if s.ndim != 1:
        raise ValueError(f"scores must be one score per example (1-D), got shape {s.shape}; "
                         "for class probabilities pass the positive class's column")
    if not np.isfinite(s).all():
        raise ValueError("scores hold NaN or infinite values")
    classes = np.unique(yt)
    if len(classes) != 2:
        raise ValueError(f"the ROC AUC needs both classes in y_true; it holds {classes.tolist()}")
    positive = yt == classes[1]
    n_pos = int(positive.sum())
    n_neg = len(yt) - n_pos
    return float((rankdata(s)[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(y_true, y_pred, *, average: str = "macro") -> dict[str, float]:
    """Accuracy, precision, recall and F1 (macro-averaged by default) in one dict.

    Examples
    --------
    >>> from tlhelpers.evaluate import classification_metrics
    >>> m = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1])
    >>> round(m["accuracy"], 2), round(m["recall"], 2), round(m["f1"], 3)
    (0.75, 0.75, 0.733)
    """
    yt, yp = _np(y_true), _np(y_pred)
    p, r, f, _ = skm.precision_recall_fscore_support(yt, yp, average=average, zero_division=0)
    return {"accuracy": accuracy(yt, yp), "precision": float(p), "recall": float(r), "f1": float(f)}


def per_class_report(y_true, y_pred, *, class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Precision, recall, F1 and support per class, plus macro and weighted averages.

    With ``class_names``, every class must occur in ``y_true`` (a ``ValueError``
    names the ones that do not).

    Examples
    --------
    >>> from tlhelpers.evaluate import per_class_report
    >>> float(per_class_report([0, 1, 1], [0, 1, 0], class_names=["ant", "bee"]).loc["bee", "recall"])
    0.5
    """
    yt, yp = _np(y_true), _np(y_pred)
    labels = None
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        seen = np.union1d(yt, yp).astype(int)
        if seen.size and (seen.min() < 0 or seen.max() >= len(class_names)):
            raise ValueError(f"{len(class_names)} class names but the labels range {seen.min()}..{seen.max()}; "
                             f"pass one name per class, in label order")
        labels = np.arange(len(class_names))
        absent = [name for c, name in enumerate(class_names) if not (yt == c).any()]
        if absent:
            raise ValueError(f"no examples of {absent} in y_true: recall and F1 of a class that never occurs "
                             f"are undefined (they would be reported as 0 and pull the macro average down); "
                             f"evaluate on data that holds every class -- a stratified split does")
    report = skm.classification_report(yt, yp, labels=labels, target_names=class_names,
                                       output_dict=True, zero_division=0)
    report.pop("accuracy", None)
    return pd.DataFrame(report).T.rename(columns={"f1-score": "f1"})


def confusion_matrix(y_true, y_pred, *, num_classes: int | None = None, normalize: str | None = None
                     ) -> np.ndarray:
    """Rows are true classes, columns predicted ones (``normalize="true"`` gives recall per row).

    Examples
    --------
    >>> from tlhelpers.evaluate import confusion_matrix
    >>> confusion_matrix([0, 1, 1], [0, 1, 0]).tolist()
    [[1, 0], [1, 1]]
    """
    yt, yp = _np(y_true), _np(y_pred)
    n = num_classes or int(max(yt.max(initial=0), yp.max(initial=0))) + 1
    return skm.confusion_matrix(yt, yp, labels=np.arange(n), normalize=normalize)


def pixel_confusion(y_true, y_pred, *, num_classes: int, per_image: bool = False) -> np.ndarray:
    """Confusion matrix of segmentation masks: pixels counted by (true class, predicted class).

    Pixels labelled ``-100`` (:data:`tlhelpers.batch.IGNORE_INDEX`) are skipped.

    Parameters
    ----------
    y_true, y_pred : arrays of class indices, same shape (e.g. ``(N, H, W)``)
    num_classes : int
    per_image : bool
        Return one matrix per image, ``(N, C, C)``, which can be resampled by
        image (:func:`paired_bootstrap_runs`) and summed.

    Raises
    ------
    ValueError
        Shapes differ, or a label or prediction is outside ``0..num_classes - 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from tlhelpers.evaluate import pixel_confusion
    >>> pixel_confusion(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 1]]), num_classes=2).tolist()
    [[1, 0], [1, 2]]
    """
    yt, yp = _np(y_true).astype(np.int64), _np(y_pred).astype(np.int64)
    if yt.shape != yp.shape:
        raise ValueError(f"y_true has shape {yt.shape} but y_pred {yp.shape}: pass masks of the same size")
    if per_image:
        return np.stack([pixel_confusion(t, p, num_classes=num_classes) for t, p in zip(yt, yp)])
    keep = yt != B.IGNORE_INDEX
    yt, yp = yt[keep], yp[keep]
    for what, a in (("label", yt), ("prediction", yp)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"a {what} is outside 0..{num_classes - 1}: values {np.unique(a)[:8]}")
    return np.bincount(yt * num_classes + yp, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def iou(confusion) -> np.ndarray:
    """Intersection over union of each class from a confusion matrix (``(C, C)``, or ``(N, C, C)`` summed).

    ``IoU_k = TP_k / (TP_k + FP_k + FN_k)``; NaN for a class that is
    neither in the truth nor in the predictions. Their mean is the mIoU.

    Examples
    --------
    >>> import numpy as np
    >>> from tlhelpers.evaluate import iou
    >>> iou(np.array([[1, 0], [1, 2]])).round(3).tolist()
    [0.5, 0.667]
    """
    c = np.asarray(confusion, dtype=float)
    if c.ndim == 3:
        c = c.sum(0)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"expected a square confusion matrix, got shape {c.shape}")
    tp = np.diag(c)
    union = c.sum(0) + c.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def detection_matches(predictions: Sequence[dict], targets: Sequence[dict], *, label: int = 1,
                      iou_threshold: float = 0.5, max_detections: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Each image's detections of one class, marked true or false positive: ``(gt_counts, matches)``.

    The matching is COCO's (the one ``pycocotools`` and ``torchmetrics`` use):
    an image's ``max_detections`` highest-scoring detections, best first, each
    take the not yet matched ground-truth box they overlap most, if that
    intersection-over-union reaches ``iou_threshold``; the rest are false
    positives.

    Parameters
    ----------
    predictions : list of dict
        Per image, torchvision's ``{"boxes": (k, 4) xyxy, "scores": (k,), "labels": (k,)}``.
    targets : list of dict
        Per image, ``{"boxes": (m, 4) xyxy, "labels": (m,)}``.

    Returns
    -------
    gt_counts : array of shape (images,)
        Ground-truth boxes of ``label`` per image.
    matches : array of shape (images, max_detections, 2)
        ``[score, 1 if a true positive else 0]`` per detection, padded with NaN.
        Per-image arrays, so :func:`paired_bootstrap_runs` can resample images
        with ``metric=average_precision``.

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.evaluate import average_precision, detection_matches
    >>> gt = [{"boxes": torch.tensor([[0., 0, 10, 10]]), "labels": torch.tensor([1])}]
    >>> pred = [{"boxes": torch.tensor([[0., 0, 10, 9], [20, 20, 30, 30]]),
    ...          "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([1, 1])}]
    >>> counts, m = detection_matches(pred, gt, max_detections=3)
    >>> counts.tolist(), m[0, :, 1].tolist(), average_precision(counts, m)
    ([1], [1.0, 0.0, nan], 1.0)
    """
    from torchvision.ops import box_iou

    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets; pass one of each per image")
    counts = np.zeros(len(targets), dtype=int)
    matches = np.full((len(targets), max_detections, 2), np.nan)
    for i, (pred, target) in enumerate(zip(predictions, targets)):
        gt = torch.as_tensor(target["boxes"]).reshape(-1, 4)[torch.as_tensor(target["labels"]).reshape(-1) == label]
        keep = torch.as_tensor(pred["labels"]).reshape(-1) == label
        boxes = torch.as_tensor(pred["boxes"]).reshape(-1, 4)[keep].float()
        scores = torch.as_tensor(pred["scores"]).reshape(-1)[keep].float()
        order = torch.argsort(scores, descending=True, stable=True)[:max_detections]
        counts[i] = len(gt)
        ious = box_iou(boxes[order], gt.float()) if len(gt) else torch.zeros(len(order), 0)
        taken = torch.zeros(len(gt), dtype=torch.bool)
        for j in range(len(order)):
            free = ious[j].masked_fill(taken, -1.0)
            best = int(free.argmax()) if len(gt) else -1
            hit = best >= 0 and float(free[best]) >= iou_threshold
            if hit:
                taken[best] = True
            matches[i, j] = float(scores[order[j]]), float(hit)
    return counts, matches


def average_precision(gt_counts, matches) -> float:
    """Average precision, COCO style, from :func:`detection_matches` (101 recall points).

    Precision is made non-increasing in recall, read at recall 0, 0.01, ..., 1,
    and averaged (0 where a recall is never reached); with the matches at IoU
    0.5 this is COCO's AP50 ("mAP@0.5" for one class). NaN when there is no
    ground-truth box.
    """
    counts = np.asarray(gt_counts).reshape(-1)
    m = np.asarray(matches, dtype=float).reshape(-1, 2)
    m = m[~np.isnan(m[:, 0])]
    total = counts.sum()
    if total == 0:
        return float("nan")
    if len(m) == 0:
        return 0.0
    order = np.argsort(-m[:, 0], kind="mergesort")
    tp = np.cumsum(m[order, 1])
    recall = tp / total
    precision = tp / np.arange(1, len(tp) + 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    at = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
    return float(np.where(at < len(precision), precision[np.minimum(at, len(precision) - 1)], 0.0).mean())


def mean_std(values: Sequence[float], *, digits: int = 3) -> str:
    """Format repeated measurements as ``mean ± std`` (sample std), for tables and prose.

    A single value, or runs that all gave the same number (a deterministic fit
    on one split), is shown alone: "± 0.000" would suggest a spread had been
    measured.

    Parameters
    ----------
    values : sequence of float
    digits : int
        Decimals of both numbers (1 suits percentages).

    Examples
    --------
    >>> from tlhelpers.evaluate import mean_std
    >>> mean_std([0.9, 0.92, 0.94])
    '0.920 ± 0.020'
    >>> mean_std([0.948, 0.948, 0.948]), mean_std([0.5])
    ('0.948', '0.500')
    >>> mean_std([97.41, 97.52, 97.44], digits=1)
    '97.5 ± 0.1'
    """
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("mean_std needs at least one value")
    if v.size == 1 or np.all(v == v[0]):
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def _two_label_arrays(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Two 1-D label arrays of the same length, checked (predicted labels, not probabilities)."""
    yt, yp = _labels_and(y_true, y_pred, "y_pred")
    if np.ndim(yp) == 2 and np.shape(yp)[1] == 1:   # a column of labels, as scikit-learn accepts
        yp = np.asarray(yp)[:, 0]
    if np.ndim(yp) != 1:
        raise ValueError(f"y_pred must be one label per example (1-D), got shape {np.shape(yp)}; "
                         "for class probabilities pass probs.argmax(1)")
    return yt, yp


def _labels_and(y_true, other, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Label array and a second array of the same length, checked."""
    yt, o = _np(y_true), _np(other)
    if yt.ndim != 1:
        raise ValueError(f"y_true must be one label per example (1-D), got shape {yt.shape}")
    if len(o) != len(yt):
        raise ValueError(f"{what} has {len(o)} rows but y_true has {len(yt)}; pass them for the same examples")
    if len(yt) == 0:
        raise ValueError("no examples: y_true is empty")
    return yt, o


def _probabilities(y_true, probs) -> tuple[np.ndarray, np.ndarray]:
    yt, p = _labels_and(y_true, probs, "probs")
    p = np.asarray(p, dtype=float)
    if p.ndim != 2:
        raise ValueError(f"probs must be (examples, classes), got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or not np.allclose(p.sum(1), 1, atol=1e-3):
        raise ValueError("probs must be finite, non-negative and sum to 1 per row (softmax outputs); "
                         "pass probabilities, not logits")
    if yt.min() < 0 or yt.max() >= p.shape[1]:
        raise ValueError(f"labels range {yt.min()}..{yt.max()} but probs has {p.shape[1]} columns")
    return yt.astype(int), p


def proportion_ci(successes: int, total: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion such as one class's recall (k hits of n).

    Examples
    --------
    >>> from tlhelpers.evaluate import proportion_ci
    >>> lo, hi = proportion_ci(7, 8)
    >>> round(lo, 2), round(hi, 2)
    (0.53, 0.98)
    """
    from scipy import stats

    if total < 1 or not 0 <= successes <= total:
        raise ValueError(f"need 0 <= successes <= total and total >= 1, got {successes} of {total}")
    ci = stats.binomtest(int(successes), int(total)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def _members(groups, n: int) -> list[np.ndarray] | None:
    """Indices of each group's examples (``None`` when ``groups`` is None), checked against ``n``."""
    if groups is None:
        return None
    g = _np(groups)
    if g.ndim != 1 or len(g) != n:
        raise ValueError(f"groups must hold one id per test example ({n}), got shape {g.shape}")
    _, inverse = np.unique(g, return_inverse=True)
    if inverse.max(initial=0) < 1:
        raise ValueError("groups holds a single group: a bootstrap over groups needs at least two")
    order = np.argsort(inverse, kind="stable")
    return np.split(order, np.cumsum(np.bincount(inverse))[:-1])


def _draw(rng: np.random.Generator, n: int, members: list[np.ndarray] | None) -> np.ndarray:
    """One bootstrap resample: n examples with replacement, or as many whole groups."""
    if members is None:
        return rng.integers(0, n, n)
    return np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))])


def _resample(statistic: Callable, n: int, n_resamples: int, confidence: float, seed: int,
              groups=None) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(indices)`` over examples (or whole groups) drawn
    with replacement."""
    from scipy import stats

    members = _members(groups, n)
    if members is not None:   # resample group numbers; the statistic sees their examples
        n, per_example = len(members), statistic
        statistic = lambda k: per_example(np.concatenate([members[j] for j in k]))  # noqa: E731
    res = stats.bootstrap((np.arange(n),), statistic, vectorized=False, n_resamples=n_resamples,
                          confidence_level=confidence, method="percentile", random_state=seed)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def bootstrap_ci(metric: Callable, y_true, y_pred, *, n_resamples: int = 2000, confidence: float = 0.95,
                 seed: int = 0, groups=None) -> tuple[float, float, float]:
    """A metric on the test set with a percentile bootstrap interval: ``(value, low, high)``.

    Test examples are resampled with replacement; ``metric(y_true, y_pred)``
    is recomputed on each resample (``y_pred`` may be labels or probabilities).
    The interval says how much the number would move on another test set of
    the same size from the same source; it says nothing about other sources.

    ``groups`` (one id per test example: the tile, patient or field each
    example shows) resamples whole groups instead of examples: the cluster
    bootstrap. Pass it when several test examples show the same thing; they
    are not independent, and resampling them one by one gives an interval
    that is too narrow.

    Examples
    --------
    >>> from tlhelpers.evaluate import accuracy, bootstrap_ci
    >>> value, lo, hi = bootstrap_ci(accuracy, [0, 1] * 50, [0, 1] * 40 + [1, 0] * 10)
    >>> value, lo < value < hi
    (0.8, True)
    """
    yt, yp = _labels_and(y_true, y_pred, "y_pred")
    lo, hi = _resample(lambda i: metric(yt[i], yp[i]), len(yt), n_resamples, confidence, seed, groups)
    return float(metric(yt, yp)), lo, hi


def paired_bootstrap(metric: Callable, y_true, pred_a, pred_b, *, n_resamples: int = 2000,
                     confidence: float = 0.95, seed: int = 0, groups=None) -> tuple[float, float, float]:
    """``metric(A) - metric(B)`` on the same test examples, with a paired bootstrap interval.

    Both models are scored on the *same* resampled examples each time, so the
    interval reflects how differently they do on the examples, not how hard
    the test set happens to be. An interval excluding 0 supports "A differs
    from B" at that confidence. ``groups``: as in :func:`bootstrap_ci`.

    Examples
    --------
    >>> from tlhelpers.evaluate import accuracy, paired_bootstrap
    >>> y = [0, 1] * 50
    >>> diff, lo, hi = paired_bootstrap(accuracy, y, y, [0, 0] * 50)
    >>> diff, lo > 0
    (0.5, True)
    """
    yt, a = _labels_and(y_true, pred_a, "pred_a")
    _, b = _labels_and(y_true, pred_b, "pred_b")
    lo, hi = _resample(lambda i: metric(yt[i], a[i]) - metric(yt[i], b[i]), len(yt), n_resamples,
                       confidence, seed, groups)
    return float(metric(yt, a) - metric(yt, b)), lo, hi


def paired_bootstrap_runs(metric: Callable, y_true, preds_a, preds_b, *, n_resamples: int = 2000,
                          confidence: float = 0.95, seed: int = 0, groups=None) -> tuple[float, float, float]:
    """Mean of ``metric(A) - metric(B)`` over paired runs, with a two-level bootstrap interval.

    ``preds_a[r]`` and ``preds_b[r]`` are the test predictions of run ``r``
    (a seed: one training subset, one initialisation) of the two methods,
    trained on the same data. Each resample draws runs with replacement *and*
    test examples with replacement, and averages the paired differences over
    the drawn runs, so the interval covers both sources of chance: which
    training subset a seed happened to pick, and which test examples the test
    set happened to hold. With a single run it reduces to
    :func:`paired_bootstrap`.

    Parameters
    ----------
    metric : callable
        ``metric(y_true, y_pred) -> float``; called ``2 * runs`` times per
        resample, so pass a fast one (e.g. :func:`accuracy`,
        :func:`balanced_accuracy`, :func:`macro_f1`, :func:`roc_auc`).
    y_true : array of shape (n,)
    preds_a, preds_b : arrays of shape (runs, n) (or (runs, n, ...))
        Whatever ``metric`` reads per example: labels, probabilities
        ``(runs, n, classes)``, or per-image confusion matrices
        ``(runs, n, C, C)`` from :func:`pixel_confusion` for a segmentation
        metric such as ``lambda _, c: np.nanmean(iou(c))`` (images resampled).
    groups : array of shape (n,), optional
        One id per test example; whole groups are resampled instead of
        examples, as in :func:`bootstrap_ci`.

    Returns
    -------
    (difference, low, high) : the mean paired difference over runs and the
    percentile interval.

    Examples
    --------
    >>> import numpy as np
    >>> from tlhelpers.evaluate import accuracy, paired_bootstrap_runs
    >>> y = np.array([0, 1] * 50)
    >>> a = np.stack([y, y]); b = np.stack([np.zeros(100), np.where(np.arange(100) < 80, y, 1 - y)])
    >>> diff, lo, hi = paired_bootstrap_runs(accuracy, y, a, b, n_resamples=200)
    >>> round(diff, 2), 0 < lo < diff < hi
    (0.35, True)
    """
    yt = _np(y_true)
    a, b = np.asarray(_np(preds_a)), np.asarray(_np(preds_b))
    if a.shape != b.shape:
        raise ValueError(f"preds_a has shape {a.shape} but preds_b {b.shape}: pass the same runs of both methods")
    if a.ndim < 2 or a.shape[0] < 1:
        raise ValueError(f"preds must be (runs, examples[, classes]), got shape {a.shape}; "
                         "for a single run use paired_bootstrap")
    for r in range(a.shape[0]):
        _labels_and(yt, a[r], f"run {r} of preds_a")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    runs, n = a.shape[0], len(yt)
    members = _members(groups, n)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples)
    for k in range(n_resamples):
        i = _draw(rng, n, members)
        per_run = np.array([metric(yt[i], a[r][i]) - metric(yt[i], b[r][i]) for r in range(runs)])
        stats[k] = per_run[rng.integers(0, runs, runs)].mean()
    tail = 100 * (1 - confidence) / 2
    diff = float(np.mean([metric(yt, a[r]) - metric(yt, b[r]) for r in range(runs)]))
    return diff, float(np.percentile(stats, tail)), float(np.percentile(stats, 100 - tail))


def mcnemar(y_true, pred_a, pred_b) -> dict[str, float]:
    """Exact McNemar test: do two classifiers' error rates differ on the same examples?

    Only the examples where exactly one model is right count: ``a_only``
    (A right, B wrong) and ``b_only``. Under "no difference" each of those is
    a fair coin, so the two-sided p-value is a binomial test of ``a_only``
    out of ``a_only + b_only`` at 1/2 (``p_value`` is 1 when no example is
    discordant). The exact test is conservative with few discordant
    examples; ``mid_p_value`` is the mid-p version (Fagerland, Lydersen &
    Laake, 2013), which keeps its nominal error rate more closely.

    Examples
    --------
    >>> from tlhelpers.evaluate import mcnemar
    >>> r = mcnemar([0] * 20, [0] * 20, [0] * 10 + [1] * 10)
    >>> r["a_only"], r["b_only"], r["p_value"] < 0.01
    (10, 0, True)
    """
    from scipy import stats

    yt, a = _labels_and(y_true, pred_a, "pred_a")
    _, b = _labels_and(y_true, pred_b, "pred_b")
    a_ok, b_ok = a == yt, b == yt
    a_only, b_only = int((a_ok & ~b_ok).sum()), int((~a_ok & b_ok).sum())
    n = a_only + b_only
    if n == 0:
        return {"a_only": 0, "b_only": 0, "p_value": 1.0, "mid_p_value": 1.0}
    p = stats.binomtest(a_only, n, 0.5).pvalue
    # mid-p: count the observed split only half; less conservative, recommended by Fagerland et al. (2013)
    mid_p = min(1.0, p - stats.binom.pmf(min(a_only, b_only), n, 0.5))
    return {"a_only": a_only, "b_only": b_only, "p_value": float(p), "mid_p_value": float(mid_p)}


def threshold_for_recall(y_true, scores, *, recall: float) -> float:
    """The highest score threshold whose recall on ``(y_true, scores)`` is at least ``recall``.

    ``y_true`` is binary (1 = the positive class, e.g. "defect"); an example
    is flagged when ``score >= threshold``. Choose the threshold on validation
    data and report the recall it gets on test data: the target met on one
    sample is not guaranteed on the next.

    Examples
    --------
    >>> from tlhelpers.evaluate import threshold_for_recall
    >>> threshold_for_recall([1, 1, 1, 1, 0, 0], [0.9, 0.8, 0.4, 0.2, 0.3, 0.1], recall=0.75)
    0.4
    """
    yt, s = _labels_and(y_true, scores, "scores")
    s = np.asarray(s, dtype=float)
    if not set(np.unique(yt)) <= {0, 1} or yt.sum() == 0:
        raise ValueError("y_true must be binary (0/1) with at least one positive example")
    if not np.isfinite(s).all():
        raise ValueError("scores hold NaN or infinity")
    if not 0 < recall <= 1:
        raise ValueError(f"recall must be in (0, 1], got {recall}")
    positives = np.sort(s[yt == 1])[::-1]
    k = int(np.ceil(recall * len(positives)))   # flag at least the k highest-scoring positives
    return float(positives[k - 1])


def operating_point(y_true, scores, *, threshold: float = 0.5) -> dict[str, float]:
    """Sensitivity, specificity and accuracy of flagging ``score >= threshold``.

    ``y_true`` is binary (1 = the positive class, e.g. "pneumonia"):
    sensitivity is the share of positives flagged (recall), specificity the
    share of negatives cleared. Pair it with :func:`threshold_for_recall`
    (choose the threshold on validation data, report it on test data) and
    :func:`proportion_ci` for intervals.

    Examples
    --------
    >>> from tlhelpers.evaluate import operating_point
    >>> operating_point([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1], threshold=0.5)
    {'sensitivity': 0.5, 'specificity': 0.5, 'accuracy': 0.5}
    """
    yt, s = _labels_and(y_true, scores, "scores")
    if not set(np.unique(yt)) <= {0, 1} or yt.min() == yt.max():
        raise ValueError("y_true must be binary (0/1) and hold both classes")
    flag = np.asarray(s, dtype=float) >= threshold
    return {"sensitivity": float(flag[yt == 1].mean()), "specificity": float((~flag[yt == 0]).mean()),
            "accuracy": float((flag == yt).mean())}


def _binned(y_true, probs, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of top-label confidence: count, sum of confidences, sum of hits, N."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    yt, p = _probabilities(y_true, probs)
    conf, correct = p.max(1), (p.argmax(1) == yt).astype(float)
    # bins over (0, 1]; a confidence of exactly 1 falls in the last bin
    b = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    return (np.bincount(b, minlength=n_bins).astype(float), np.bincount(b, conf, n_bins),
            np.bincount(b, correct, n_bins), len(yt))


def reliability_table(y_true, probs, *, n_bins: int = 15) -> pd.DataFrame:
    """Top-label reliability: per confidence bin, the mean confidence, the accuracy and the count.

    A calibrated model's accuracy in each bin equals its mean confidence there;
    empty bins are left out.

    Examples
    --------
    >>> from tlhelpers.evaluate import reliability_table
    >>> reliability_table([0, 0, 1, 1], [[0.9, 0.1]] * 4, n_bins=10)[["confidence", "accuracy", "count"]].values.tolist()
    [[0.9, 0.5, 4.0]]
    """
    count, conf, hits, _ = _binned(y_true, probs, n_bins)
    keep = count > 0
    edges = np.arange(n_bins + 1) / n_bins
    return pd.DataFrame({"lower": edges[:-1][keep], "upper": edges[1:][keep],
                         "confidence": conf[keep] / count[keep], "accuracy": hits[keep] / count[keep],
                         "count": count[keep]})


def expected_calibration_error(y_true, probs, *, n_bins: int = 15) -> float:
    """ECE: the count-weighted mean gap between accuracy and confidence over the bins.

    ``sum_b (n_b / N) * |accuracy_b - confidence_b|`` with equal-width bins of
    the top-label confidence (15 bins, as in Guo et al., 2017).

    Examples
    --------
    >>> from tlhelpers.evaluate import expected_calibration_error
    >>> round(expected_calibration_error([0, 0, 1, 1], [[0.9, 0.1]] * 4), 3)
    0.4
    """
    _, conf, hits, n = _binned(y_true, probs, n_bins)
    return float(np.abs(hits - conf).sum() / n)   # per bin: n_b * |accuracy_b - confidence_b|


def _log_probs(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probs, 1e-12, None))


def apply_temperature(probs, temperature: float) -> np.ndarray:
    """Soften (T > 1) or sharpen (T < 1) probabilities: ``softmax(log(p) / T)``.

    ``log p`` differs from the logits by a constant per row, so this is
    temperature scaling of the logits, for any model that outputs probabilities.
    The predicted class never changes.

    Examples
    --------
    >>> from tlhelpers.evaluate import apply_temperature
    >>> apply_temperature([[0.8, 0.2]], 1e9).round(2).tolist()
    [[0.5, 0.5]]
    """
    from scipy.special import softmax

    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    p = np.asarray(_np(probs), dtype=float)
    return softmax(_log_probs(p) / temperature, axis=1)


def fit_temperature(y_true, probs, *, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature that minimises cross-entropy on ``(y_true, probs)`` (Guo et al., 2017).

    Fit it on validation data, then :func:`apply_temperature` to test
    probabilities. One parameter, so it cannot overfit much, and it changes
    confidence, never the predicted class.

    Examples
    --------
    >>> import numpy as np
    >>> from tlhelpers.evaluate import fit_temperature
    >>> p = np.array([[0.99, 0.01]] * 10)            # 99 % sure, 70 % right: over-confident
    >>> fit_temperature([0] * 7 + [1] * 3, p) > 1
    True
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    yt, p = _probabilities(y_true, probs)
    logp = _log_probs(p)

    def nll(t):
        return -float(log_softmax(logp / t, axis=1)[np.arange(len(yt)), yt].mean())

    return float(minimize_scalar(nll, bounds=bounds, method="bounded").x)


class _Files(torch.utils.data.Dataset):
    """Unlabelled image files, transformed; yields ``(image, index)`` so the order is kept."""

    def __init__(self, paths: list[Path], transform):
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from .data import load_image
        img = load_image(self.paths[i])
        return (self.transform(img) if self.transform is not None else img), i


def predict_folder(model: nn.Module, folder: str | os.PathLike, *, transform, classes: Sequence[str],
                   batch_size: int = 32, device: str | None = None, progress: bool = False) -> pd.DataFrame:
    """Predict a class for every image file below ``folder`` (no labels needed).

    Hidden files and folders (``.ipynb_checkpoints``) are skipped; a file that
    is not a readable image stops with its path in the error.

    Parameters
    ----------
    model : nn.Module
        The trained classifier (e.g. from :func:`tlhelpers.checkpoint.load_model`).
    folder : path
        Images, directly or in sub-folders.
    transform : callable
        The evaluation preprocessing the model was trained with
        (``tlhelpers.models.transforms(name)``).
    classes : sequence of str
        Class names in the order of the model's outputs.

    Returns
    -------
    pandas.DataFrame
        One row per file: ``file`` (relative to ``folder``), ``prediction``,
        ``probability`` (of the prediction), then one probability column per class.

    Examples
    --------
    >>> import tempfile, pathlib, torch
    >>> from PIL import Image
    >>> from torch import nn
    >>> import torchvision.transforms.v2 as T
    >>> from tlhelpers.evaluate import predict_folder
    >>> d = pathlib.Path(tempfile.mkdtemp()); Image.new("RGB", (4, 4), (255, 0, 0)).save(d / "red.png")
    >>> tf = T.Compose([T.PILToTensor(), T.ToDtype(torch.float32, scale=True), T.Lambda(lambda x: x.mean((1, 2)))])
    >>> predict_folder(nn.Identity(), d, transform=tf, classes=["red", "green", "blue"])["prediction"].tolist()
    ['red']
    """
    from .data import IMAGE_EXTENSIONS

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder} to predict on")
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if not paths:
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) below {folder}")
    loader = DataLoader(_Files(paths, transform), batch_size=batch_size)
    _, pred, probs = predict(model, loader, device=device, progress=progress)
    classes = [str(c) for c in classes]
    if probs.shape[1] != len(classes):
        raise ValueError(f"the model outputs {probs.shape[1]} classes but {len(classes)} class names were given")
    out = pd.DataFrame({"file": [p.relative_to(folder).as_posix() for p in paths],
                        "prediction": [classes[i] for i in pred], "probability": probs.max(1)})
    return pd.concat([out, pd.DataFrame(probs, columns=classes)], axis=1)
