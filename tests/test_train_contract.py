"""fit, predict and extract_features on every batch form, and the traps a user's own data walks into."""
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from tlhelpers import batch, checkpoint, evaluate, settings
from tlhelpers.train import EarlyStopping, evaluate_one_epoch, fit, train_one_epoch


def xy(n=64, seed=0, classes=2):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] > 0).long() if classes == 2 else torch.randint(classes, (n,), generator=g)


class WithClasses(TensorDataset):
    def __init__(self, *tensors, classes):
        super().__init__(*tensors)
        self.classes = classes


# --------------------------------------------------------------------------- batch contract

def test_split_every_batch_form():
    x, y = torch.zeros(2, 3), torch.tensor([0, 1])
    assert batch.split((x, y))[1] is y and batch.split([x])[1] is None and batch.split(x)[0] is x
    inputs, labels = batch.split({"input_ids": x.long(), "attention_mask": x.long(), "labels": y})
    assert set(inputs) == {"input_ids", "attention_mask"} and labels is y
    images, targets = batch.split(([x, x], [{"boxes": torch.zeros(0, 4)}, {"boxes": torch.zeros(1, 4)}]))
    assert len(images) == 2 and targets[1]["boxes"].shape == (1, 4)
    with pytest.raises(ValueError, match="3 items"):
        batch.split((x, y, y))
    with pytest.raises(TypeError, match="str"):
        batch.split("text")


def test_outputs_logits_and_losses():
    t = torch.zeros(2, 3)

    class Output:  # like transformers' ModelOutput
        logits, loss = t, torch.tensor(0.5)

    assert batch.logits(Output()) is t and float(batch.loss(Output())) == 0.5
    assert batch.logits((t, t + 1)) is t and batch.loss((t, t)) is None
    assert float(batch.loss({"loss_classifier": torch.tensor(1.0), "loss_box": torch.tensor(2.0)})) == 3.0
    assert batch.logits({"loss_classifier": torch.tensor(1.0)}) is None
    assert batch.size({"input_ids": torch.zeros(5, 9)}) == 5


class TinyTextModel(nn.Module):
    """Hugging Face style: keyword inputs, computes its own loss from ``labels``."""

    def __init__(self):
        super().__init__()
        self.emb, self.out = nn.EmbeddingBag(50, 8), nn.Linear(8, 2)

    def forward(self, input_ids, attention_mask=None, labels=None):
        logits = self.out(self.emb(input_ids))
        out = type("Out", (), {})()
        out.logits = logits
        out.loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return out


class DictDataset(Dataset):
    def __init__(self, n=64):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(1, 50, (n, 6), generator=g)
        self.labels = (self.ids[:, 0] < 25).long()

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(6, dtype=torch.long),
                "labels": self.labels[i]}


def test_fit_and_predict_on_tokenizer_style_dict_batches():
    dl = DataLoader(DictDataset(), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    h = fit(TinyTextModel(), dl, dl, epochs=30, lr=0.05, seed=0, progress=False)
    assert h["val_accuracy"].iloc[-1] > 0.9
    y, p, _ = evaluate.predict(TinyTextModel(), DataLoader(DictDataset(8), batch_size=4))
    assert y.shape == p.shape == (8,)


class TinyDetector(nn.Module):
    """torchvision detector style: list of images and target dicts in, a loss dict out in training."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(4))

    def forward(self, images, targets=None):
        if self.training:
            boxes = torch.stack([t["boxes"][0] for t in targets])
            pred = self.w.expand_as(boxes) + torch.stack([im.mean() for im in images])[:, None]
            return {"loss_box_reg": ((pred - boxes) ** 2).mean(), "loss_objectness": self.w.abs().mean() * 0}
        return [{"boxes": self.w[None]} for _ in images]


def test_fit_trains_a_model_that_returns_a_loss_dict():
    images = [torch.rand(3, 8, 8) for _ in range(8)]
    targets = [{"boxes": torch.tensor([[1.0, 2.0, 3.0, 4.0]]), "labels": torch.tensor([1])} for _ in range(8)]
    dl = DataLoader(list(zip(images, targets)), batch_size=4, collate_fn=lambda b: tuple(zip(*b)))
    model = TinyDetector()
    h = fit(model, dl, epochs=40, lr=0.1, seed=0, progress=False)
    assert h["train_loss"].iloc[-1] < 0.1 * h["train_loss"].iloc[0]
    assert h["train_accuracy"].isna().all()  # no classification accuracy for a detector


def test_step_fn_hook_replaces_the_default_step():
    x, y = xy()
    calls = []

    def step(model, b):
        calls.append(1)
        inputs, targets = b
        return nn.functional.cross_entropy(model(inputs), targets)

    h = fit(nn.Linear(4, 2), DataLoader(TensorDataset(x, y), batch_size=16), epochs=2, step_fn=step, progress=False)
    assert len(calls) == 8 and len(h) == 2


def test_train_one_epoch_and_evaluate_one_epoch_are_callable_directly():
    x, y = xy()
    dl = DataLoader(TensorDataset(x, y), batch_size=16)
    m = nn.Linear(4, 2)
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    before = evaluate_one_epoch(m, dl)["loss"]
    for _ in range(5):
        train_one_epoch(m, dl, opt, progress=False)
    assert evaluate_one_epoch(m, dl)["loss"] < before


# --------------------------------------------------------------------------- traps

def test_head_with_too_many_outputs_is_refused_before_training():
    x, y = xy(classes=3)
    dl = DataLoader(WithClasses(x, y, classes=["a", "b", "c"]), batch_size=16)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1000))  # an ImageNet head left in place
    with pytest.raises(ValueError, match="1000 outputs but the data has 3 classes"):
        fit(model, dl, epochs=1, progress=False)


def test_labels_are_checked_in_every_batch_not_only_the_first():
    x = torch.randn(32, 4)
    y = torch.zeros(32, dtype=torch.long)
    y[20] = 5  # only the second batch holds the bad label
    with pytest.raises(ValueError, match=r"labels range 0..5 but the model outputs 2 classes \(epoch 0, batch 1\)"):
        fit(nn.Linear(4, 2), DataLoader(TensorDataset(x, y), batch_size=16), epochs=1, progress=False)


def test_a_batch_of_ignored_labels_is_named_not_reported_as_divergence():
    x = torch.randn(16, 4)
    y = torch.full((16,), -100)
    with pytest.raises(ValueError, match="every label in this batch .* is -100"):
        fit(nn.Linear(4, 2), DataLoader(TensorDataset(x, y), batch_size=8), epochs=1, progress=False)


def test_inf_input_never_reaches_batchnorm_statistics():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    x, y = xy(32)
    x[3] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit(model, DataLoader(TensorDataset(x, y), batch_size=8), epochs=1, progress=False)
    assert torch.isfinite(model[1].running_mean).all() and torch.isfinite(model[1].running_var).all()


def test_predict_refuses_nan_inputs_and_reads_unlabelled_batches():
    x = torch.randn(4, 2)
    x[1, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        evaluate.predict(nn.Linear(2, 2), DataLoader(TensorDataset(x, torch.zeros(4).long())))
    y, p, prob = evaluate.predict(nn.Linear(2, 3), DataLoader(TensorDataset(torch.randn(5, 2)), batch_size=2))
    assert y is None and p.shape == (5,) and prob.shape == (5, 3)


def test_per_class_report_refuses_too_few_names():
    with pytest.raises(ValueError, match="2 class names but the labels range 0..2"):
        evaluate.per_class_report([0, 1, 2], [0, 1, 2], class_names=["a", "b"])


def test_seeded_fit_is_repeatable_when_the_model_is_built_after_seeding():
    def run():
        settings.seed_everything(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        x, y = xy()
        dl = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
        return fit(model, dl, epochs=2, seed=0, progress=False)

    pd.testing.assert_frame_equal(run().drop(columns="seconds"), run().drop(columns="seconds"))


def test_existing_checkpoint_is_not_overwritten_without_asking(tmp_path):
    x, y = xy()
    dl = DataLoader(TensorDataset(x, y), batch_size=16)
    ckpt = tmp_path / "run.pt"
    fit(nn.Linear(4, 2), dl, epochs=1, checkpoint=ckpt, progress=False)
    before = ckpt.read_bytes()
    with pytest.raises(FileExistsError, match="resume=True .* overwrite=True"):
        fit(nn.Linear(4, 2), dl, epochs=1, checkpoint=ckpt, progress=False)
    assert ckpt.read_bytes() == before
    fit(nn.Linear(4, 2), dl, epochs=1, checkpoint=ckpt, overwrite=True, progress=False)


def test_resume_says_what_it_resumed_and_a_stopped_run_stays_stopped(tmp_path, capsys):
    x, y = xy()
    tr = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    va = DataLoader(TensorDataset(*xy(seed=1)), batch_size=64)
    ckpt = tmp_path / "run.pt"
    model = nn.Linear(4, 2)
    h = fit(model, tr, va, epochs=60, lr=2.0, early_stopping=1, checkpoint=ckpt, seed=0, progress=False)
    assert len(h) < 60
    again = nn.Linear(4, 2)
    h2 = fit(again, tr, va, epochs=60, lr=2.0, early_stopping=1, checkpoint=ckpt, resume=True, progress=False)
    assert "stopped early" in capsys.readouterr().out
    pd.testing.assert_frame_equal(h, h2)
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)  # the best weights, as the uninterrupted run returned


def test_early_stopping_state_is_plain():
    es = EarlyStopping(2, monitor="val_accuracy")
    m = nn.Linear(1, 1)
    assert [es.update({"val_accuracy": v}, m) for v in [0.5, 0.6, 0.6, 0.55]] == [False, False, False, True]


# --------------------------------------------------------------------------- checkpoints never run code

class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickled_checkpoint_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.pt"
    torch.save({"format": checkpoint.FORMAT, "model": Exploit(marker)}, ckpt)
    with pytest.raises(ValueError, match="refusing to load"):
        checkpoint.load_checkpoint(ckpt)
    x, y = xy()
    with pytest.raises(ValueError, match="refusing to load"):
        fit(nn.Linear(4, 2), DataLoader(TensorDataset(x, y)), epochs=1, checkpoint=ckpt, resume=True,
            progress=False)
    assert not marker.exists()
    with pytest.raises(ValueError, match="refusing to load"):
        checkpoint.load_model(ckpt, model=nn.Linear(4, 2))
    assert not marker.exists()


def test_truncated_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    good = tmp_path / "good.pt"
    checkpoint.save_model(nn.Linear(4, 2), good, classes=["a", "b"])
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:100])
    with pytest.raises(ValueError, match="cannot read"):
        checkpoint.load_model(cut, model=nn.Linear(4, 2))
    with pytest.raises(ValueError, match="not a tlhelpers training checkpoint"):
        checkpoint.load_checkpoint(good)
    with pytest.raises(ValueError, match="do not fit"):
        checkpoint.load_model(good, model=nn.Linear(4, 3))


def test_save_model_keeps_classes_and_preprocessing(tmp_path):
    model = nn.Linear(4, 3)
    path = checkpoint.save_model(model, tmp_path / "m.pt", classes=["a", "b", "c"],
                                 preprocessing={"input_size": 224})
    loaded, info = checkpoint.load_model(path, model=nn.Linear(4, 3))
    assert info["classes"] == ["a", "b", "c"] and info["preprocessing"] == {"input_size": 224}
    assert torch.equal(loaded.weight, model.weight) and not loaded.training
    with pytest.raises(ValueError, match="2 class names"):
        checkpoint.save_model(model, tmp_path / "x.pt", classes=["a", "b"])


def test_a_seeded_head_makes_two_identical_runs_whatever_ran_before():
    from tlhelpers import models

    def run(noise):
        torch.rand(noise)  # other code drew random numbers before; the old trap: the head depended on it
        model = models.create_model("resnet18", pretrained=False, num_classes=3, seed=0)
        x = torch.rand(12, 3, 32, 32, generator=torch.Generator().manual_seed(5))
        y = torch.tensor([0, 1, 2] * 4)
        dl = DataLoader(WithClasses(x, y, classes=["a", "b", "c"]), batch_size=4, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
        return fit(model, dl, epochs=1, seed=0, progress=False)

    first, second = run(1), run(7)
    pd.testing.assert_frame_equal(first.drop(columns="seconds"), second.drop(columns="seconds"))


def test_save_model_checks_the_real_head_not_the_last_defined_linear(tmp_path):
    class Custom(nn.Module):  # the classifier is defined first, an auxiliary projection last
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)
            self.aux = nn.Linear(4, 7)

        def forward(self, x):
            return self.fc(x)

    checkpoint.save_model(Custom(), tmp_path / "m.pt", classes=["a", "b", "c"])
    with pytest.raises(ValueError, match="2 class names for a model whose head has 3 outputs"):
        checkpoint.save_model(Custom(), tmp_path / "m.pt", classes=["a", "b"])
