"""Metrics in one place, on scikit-learn: accuracy, precision, recall, F1, confusion matrix.

The functions take label arrays (numpy or torch) and return plain floats,
dicts, numpy arrays or DataFrames; :func:`predict` turns a model and a
DataLoader into those arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn import metrics as skm
from torch import nn
from torch.utils.data import DataLoader

from . import settings


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _logits(out) -> torch.Tensor:
    """The logits in a model's output: a tensor, an object with ``.logits`` (Hugging Face,
    Inception's named tuple) or a tuple whose first item they are (aux heads in train mode)."""
    out = out.logits if hasattr(out, "logits") else out
    return out[0] if isinstance(out, tuple) else out


def predict(model: nn.Module, loader: DataLoader, device: str | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run ``model`` over ``loader`` in eval mode.

    Returns
    -------
    y_true : ndarray of int
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
    dev = settings.get_device(device)
    was_training = model.training
    model.eval().to(dev)
    ys, logits = [], []
    with torch.no_grad():
        for x, y in loader:
            logits.append(_logits(model(x.to(dev))).float().cpu())
            ys.append(torch.as_tensor(y))
    model.train(was_training)
    probs = torch.cat(logits).softmax(1).numpy()
    return torch.cat(ys).numpy(), probs.argmax(1), probs


def accuracy(y_true, y_pred) -> float:
    """Fraction of correct predictions.

    Examples
    --------
    >>> from tlhelpers.evaluate import accuracy
    >>> accuracy([0, 1, 1], [0, 1, 0])
    0.6666666666666666
    """
    return float(skm.accuracy_score(_np(y_true), _np(y_pred)))


def classification_metrics(y_true, y_pred, average: str = "macro") -> dict[str, float]:
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


def per_class_report(y_true, y_pred, class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Precision, recall, F1 and support per class, plus macro and weighted averages.

    Examples
    --------
    >>> from tlhelpers.evaluate import per_class_report
    >>> float(per_class_report([0, 1, 1], [0, 1, 0], ["ant", "bee"]).loc["bee", "recall"])
    0.5
    """
    yt, yp = _np(y_true), _np(y_pred)
    labels = np.arange(len(class_names)) if class_names is not None else None
    report = skm.classification_report(yt, yp, labels=labels, target_names=class_names,
                                       output_dict=True, zero_division=0)
    report.pop("accuracy", None)
    return pd.DataFrame(report).T.rename(columns={"f1-score": "f1"})


def confusion_matrix(y_true, y_pred, num_classes: int | None = None, normalize: str | None = None
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


def mean_std(values: Sequence[float]) -> str:
    """Format repeated measurements as ``mean ± std`` (sample std), for tables and prose.

    Examples
    --------
    >>> from tlhelpers.evaluate import mean_std
    >>> mean_std([0.9, 0.92, 0.94])
    '0.920 ± 0.020'
    """
    v = np.asarray(values, dtype=float)
    sd = v.std(ddof=1) if v.size > 1 else 0.0
    return f"{v.mean():.3f} ± {sd:.3f}"
