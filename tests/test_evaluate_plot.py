import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from tlhelpers import evaluate, plot

matplotlib.use("Agg")


def test_metrics_match_hand_computation():
    y, p = [0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2]
    m = evaluate.classification_metrics(y, p)
    # per class precision: 1, 0.5, 0.5 ; recall: 2/3, 0.5, 1
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert m["recall"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    f1 = [2 * 1 * (2 / 3) / (1 + 2 / 3), 0.5, 2 * 0.5 * 1 / 1.5]
    assert m["f1"] == pytest.approx(np.mean(f1))
    rep = evaluate.per_class_report(y, p, class_names=["a", "b", "c"])
    assert rep.loc["c", "recall"] == 1.0 and rep.loc["a", "support"] == 3
    assert evaluate.confusion_matrix(torch.tensor(y), torch.tensor(p)).tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    # one value, or identical runs (a deterministic fit), carry no spread: no "± 0.000"
    assert evaluate.mean_std([1.0]) == "1.000" and evaluate.mean_std([0.25, 0.25, 0.25]) == "0.250"
    with pytest.raises(ValueError):
        evaluate.mean_std([])


def test_predict_restores_training_mode():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5)).train()
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(5, 2), torch.zeros(5).long()))
    y, pred, prob = evaluate.predict(net, dl)
    assert net.training and prob.shape == (5, 2) and np.allclose(prob.sum(1), 1)


def test_plots_return_axes_and_never_show(monkeypatch):
    import matplotlib.pyplot as plt
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("plt.show() called"))
    plot.set_style()
    h = pd.DataFrame({"epoch": [1, 2], "train_accuracy": [0.5, 0.9], "val_accuracy": [0.4, 0.8]})
    assert isinstance(plot.plot_history(h), plt.Axes)
    assert isinstance(plot.plot_confusion_matrix(np.array([[1, 2], [3, 4]]), ["a", "b"], normalize=True), plt.Axes)
    assert isinstance(plot.show_images(torch.rand(5, 1, 8, 8), [0, 1, 0, 1, 0], preds=[0, 0, 0, 1, 1]), plt.Figure)
    for method in ["pca", "tsne"]:
        assert isinstance(plot.plot_embedding(torch.randn(30, 4), [0, 1, 2] * 10, method=method), plt.Axes)
    with pytest.raises(ValueError):
        plot.plot_embedding(np.zeros((4, 2)), [0, 1, 0, 1], method="umap")
    assert len(plot.plot_filters(torch.randn(40, 3, 3, 3)).axes) == 32
    df = pd.DataFrame({"n": [1, 1, 2, 2], "acc": [0.1, 0.2, 0.3, 0.4], "m": ["x"] * 4})
    assert isinstance(plot.plot_curves(df, "n", "acc", "m", logx=True), plt.Axes)
    plt.close("all")


def test_logits_are_found_in_every_output_form():
    from types import SimpleNamespace

    from tlhelpers.batch import logits

    t = torch.tensor([[1.0, 2.0]])
    assert logits(t) is t
    assert logits(SimpleNamespace(logits=t)) is t        # Hugging Face / Inception's named tuple
    assert logits((t, torch.zeros(1, 2))) is t           # (logits, aux_logits)


def test_label_points_keeps_labels_apart_and_checks_its_input():
    import matplotlib.pyplot as plt

    from tlhelpers.plot import label_points

    fig, ax = plt.subplots()
    ax.scatter([0, 0, 0], [0, 0, 0])
    label_points(ax, [(0, 0)] * 3, ["one", "two", "three"])
    assert len({t.xyann for t in ax.texts}) == 3          # three points in one place: three places
    with pytest.raises(ValueError, match="one \\(x, y\\) per label: 2 labels"):
        label_points(ax, [(0, 0)] * 3, ["a", "b"])
    plt.close(fig)
