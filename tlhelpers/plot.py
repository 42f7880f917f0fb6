"""The book's figures, on matplotlib and seaborn, in one shared style.

Every function draws into an ``Axes`` (a new one unless ``ax=`` is given) and
returns it; none calls ``plt.show()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch


def set_style() -> None:
    """Apply the book's plotting style (seaborn 'whitegrid', readable sizes).

    Examples
    --------
    >>> from tlhelpers.plot import set_style
    >>> set_style()
    """
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "figure.figsize": (6, 4),
                         "axes.titlesize": "medium"})


def as_jpeg(fig, *, quality: int = 85):
    """A figure of photos as a JPEG for the notebook to show (then closed), a fraction of a PNG's size.

    PNG suits line plots; a grid of photographs compresses several times
    better as JPEG, which keeps executed notebooks and book pages small.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from tlhelpers.plot import as_jpeg
    >>> fig, ax = plt.subplots(figsize=(1, 1))
    >>> as_jpeg(fig).data[:2] == bytes([0xFF, 0xD8])   # the JPEG magic number
    True
    """
    import io

    from IPython.display import Image

    if not 1 <= quality <= 95:
        raise ValueError(f"quality must be between 1 and 95 (JPEG), not {quality}")
    buf = io.BytesIO()
    fig.savefig(buf, format="jpeg", pil_kwargs={"quality": quality}, bbox_inches="tight")
    plt.close(fig)
    return Image(data=buf.getvalue(), format="jpeg")


def label_points(ax, xy, labels: Sequence[str], *, fontsize: int = 10):
    """Write a label beside each point, each put where it overlaps no label already written.

    Tries right-above, right-below, left-above and left-below of the point in
    turn and keeps the first free place (the last one tried if none is free).
    Returns the ``Axes``.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from tlhelpers.plot import label_points
    >>> fig, ax = plt.subplots()
    >>> _ = ax.scatter([0, 0.001], [0, 0])
    >>> ax = label_points(ax, [(0, 0), (0.001, 0)], ["first", "second"])
    >>> [t.get_text() for t in ax.texts], ax.texts[0].xyann != ax.texts[1].xyann
    (['first', 'second'], True)
    """
    xy = np.asarray(xy, dtype=float)
    if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) != len(labels):
        raise ValueError(f"need one (x, y) per label: {len(labels)} labels, points of shape {xy.shape}")
    renderer = ax.figure.canvas.get_renderer()
    taken = []
    for (x, y), text in zip(xy, labels):
        t = ax.annotate(text, (x, y), xytext=(4, 3), textcoords="offset points", fontsize=fontsize)
        for dx, dy, ha in [(4, 3, "left"), (4, -12, "left"), (-4, 3, "right"), (-4, -12, "right")]:
            t.xyann = (dx, dy)
            t.set_horizontalalignment(ha)
            box = t.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in taken):
                break
        taken.append(box)
    return ax


def _ax(ax, figsize=None):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_history(history: pd.DataFrame, *, metric: str = "accuracy", ax=None):
    """Learning curves: train and validation ``metric`` per epoch.

    Examples
    --------
    >>> import pandas as pd
    >>> from tlhelpers.plot import plot_history
    >>> h = pd.DataFrame({"epoch": [1, 2], "train_accuracy": [0.5, 0.8], "val_accuracy": [0.5, 0.7]})
    >>> plot_history(h).get_ylabel()
    'accuracy'
    """
    ax = _ax(ax)
    for split in ("train", "val"):
        col = f"{split}_{metric}"
        if col in history:
            ax.plot(history["epoch"], history[col], marker="o", label=split)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.legend()
    return ax


def plot_confusion_matrix(cm: np.ndarray, class_names: Sequence[str], *, normalize: bool = False, ax=None):
    """Heatmap of a confusion matrix (rows: true class, columns: predicted).

    Examples
    --------
    >>> import numpy as np
    >>> from tlhelpers.plot import plot_confusion_matrix
    >>> plot_confusion_matrix(np.array([[3, 1], [0, 4]]), ["ant", "bee"]).get_xlabel()
    'predicted'
    """
    import seaborn as sns

    ax = _ax(ax, (4, 3.5))
    data = cm / cm.sum(1, keepdims=True).clip(min=1) if normalize else cm
    sns.heatmap(data, annot=True, fmt=".2f" if normalize else "d", cmap="Blues", cbar=False,
                xticklabels=class_names, yticklabels=class_names, ax=ax)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return ax


def plot_reliability(table, *, label: str | None = None, ax=None):
    """Reliability diagram from :func:`tlhelpers.evaluate.reliability_table`.

    Each point is one confidence bin (its area grows with the number of
    examples in it); points on the diagonal are calibrated, points below it
    over-confident.

    Examples
    --------
    >>> from tlhelpers.evaluate import reliability_table
    >>> from tlhelpers.plot import plot_reliability
    >>> plot_reliability(reliability_table([0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])).get_xlabel()
    'confidence (top class)'
    """
    ax = _ax(ax, (4, 4))
    if "calibrated" not in [line.get_label() for line in ax.get_lines()]:   # one diagonal per axes
        ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="calibrated")
    sizes = 20 + 180 * table["count"] / table["count"].max()
    line = ax.plot(table["confidence"], table["accuracy"], marker=None, label=label)[0]
    ax.scatter(table["confidence"], table["accuracy"], s=sizes, color=line.get_color(), alpha=0.7)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("confidence (top class)")
    ax.set_ylabel("accuracy")
    ax.legend(loc="lower right")
    return ax


def _to_image(x) -> np.ndarray:
    """CHW tensor (any range) or PIL image -> HWC float array in [0, 1] for imshow."""
    if isinstance(x, torch.Tensor):
        a = x.detach().cpu().float()
        if a.dim() == 3 and a.shape[0] in (1, 3):
            a = a.permute(1, 2, 0)
        a = a.numpy()
    else:
        a = np.asarray(x, dtype=float)
        a = a / 255.0 if a.max() > 1 else a
    lo, hi = a.min(), a.max()
    a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return a.squeeze()


def show_images(images: Sequence, labels: Sequence[int] | None = None, *, preds: Sequence[int] | None = None,
                class_names: Sequence[str] | None = None, ncols: int = 6, size: float = 1.8):
    """A grid of images titled with true (and predicted) labels; mistakes in red.

    Tensors are rescaled to [0, 1] for display, so normalised inputs show fine.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.plot import show_images
    >>> fig = show_images(torch.rand(3, 3, 8, 8), [0, 1, 0], preds=[0, 1, 1], class_names=["ant", "bee"])
    >>> len(fig.axes)
    3
    """
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    ncols = min(ncols, n)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3 * nrows), squeeze=False)
    name = (lambda i: class_names[i]) if class_names is not None else str
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.remove()
            continue
        img = _to_image(images[i])
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        ax.set_axis_off()
        if labels is not None:
            title, color = name(int(labels[i])), "black"
            if preds is not None:
                title += f"\npred: {name(int(preds[i]))}"
                color = "black" if int(preds[i]) == int(labels[i]) else "red"
            ax.set_title(title, fontsize=9, color=color)
    fig.tight_layout()
    return fig


def plot_embedding(features, labels, *, class_names: Sequence[str] | None = None, method: str = "pca",
                   seed: int = 0, ax=None, title: str | None = None):
    """2-D scatter of feature vectors (PCA or t-SNE), coloured by class.

    Examples
    --------
    >>> import numpy as np
    >>> from tlhelpers.plot import plot_embedding
    >>> ax = plot_embedding(np.random.rand(20, 5), [0, 1] * 10, class_names=["ant", "bee"])
    >>> ax.get_legend() is not None
    True
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler

    x = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    x = StandardScaler().fit_transform(x.reshape(len(x), -1))
    if method == "pca":
        xy = PCA(n_components=2, random_state=seed).fit_transform(x)
    elif method == "tsne":
        xy = TSNE(n_components=2, random_state=seed, init="pca",
                  perplexity=min(30.0, max(2.0, (len(x) - 1) / 3))).fit_transform(x)
    else:
        raise ValueError(f"method must be 'pca' or 'tsne', not {method!r}")
    ax = _ax(ax, (4.5, 4))
    for c in np.unique(y):
        m = y == c
        ax.scatter(xy[m, 0], xy[m, 1], s=12, alpha=0.8,
                   label=class_names[c] if class_names is not None else str(c))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=2, fontsize=9)
    if title:
        ax.set_title(title)
    return ax


def plot_filters(weight: torch.Tensor, *, ncols: int = 8, max_filters: int = 32, size: float = 0.9):
    """First-layer convolution filters as small RGB images.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.plot import plot_filters
    >>> len(plot_filters(torch.randn(16, 3, 3, 3)).axes)
    16
    """
    w = weight.detach().cpu()[:max_filters]
    return show_images(list(w), ncols=ncols, size=size)


def plot_curves(df: pd.DataFrame, x: str, y: str, hue: str, *, ax=None, logx: bool = False):
    """Mean curve per group with a band of ±1 standard deviation over seeds.

    Examples
    --------
    >>> import pandas as pd
    >>> from tlhelpers.plot import plot_curves
    >>> df = pd.DataFrame({"k": [1, 1, 2, 2], "acc": [0.5, 0.6, 0.7, 0.8], "method": ["a"] * 4})
    >>> plot_curves(df, "k", "acc", "method").get_xlabel()
    'k'
    """
    ax = _ax(ax)
    for name, g in df.groupby(hue, sort=False):
        stats = g.groupby(x)[y].agg(["mean", "std"]).fillna(0.0)
        ax.plot(stats.index, stats["mean"], marker="o", label=name)
        ax.fill_between(stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"], alpha=0.2)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.legend()
    return ax
