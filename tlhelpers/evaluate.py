"""Metrics in one place, on scikit-learn: accuracy, precision, recall, F1, confusion matrix.

The functions take label arrays (numpy or torch) and return plain floats,
dicts, numpy arrays or DataFrames; :func:`predict` turns a model and a
DataLoader into those arrays.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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
    return float(skm.accuracy_score(_np(y_true), _np(y_pred)))


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
