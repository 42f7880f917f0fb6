import math

import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tlhelpers.train import fit, lr_finder, one_cycle, suggest_lr, time_to_accuracy


def problem(seed=0, n=96):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return TensorDataset(x, y)


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))


def loaders():
    return (DataLoader(problem(0), batch_size=16, shuffle=True),
            DataLoader(problem(1), batch_size=64))


def test_fit_learns_and_reports_history():
    tr, va = loaders()
    h = fit(net(), tr, va, epochs=15, lr=0.05, seed=0, progress=False)
    assert isinstance(h, pd.DataFrame)
    assert list(h.columns) == ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"]
    assert h["epoch"].tolist() == list(range(1, 16))
    assert h["val_accuracy"].iloc[-1] > 0.9 and h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]


def two_groups(model):
    return torch.optim.AdamW([{"params": model[0].parameters(), "lr": 1e-3},
                              {"params": model[3].parameters(), "lr": 1e-2}], weight_decay=0.01)


@pytest.mark.parametrize("recipe", ["SGD, cosine per epoch", "two groups, one_cycle per batch"])
def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(tmp_path, recipe):
    def run(checkpoint=None, stop_after=None, resume=False):
        model = net()
        if recipe.startswith("SGD"):
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 6)
        else:   # one_cycle is built inside fit, over all 6 epochs' steps: a resumed run keeps its place
            opt, sched = two_groups(model), one_cycle()
        tr, va = loaders()

        def interrupt(epoch, row):
            if stop_after is not None and epoch + 1 == stop_after:
                raise KeyboardInterrupt

        if not resume:
            torch.manual_seed(123)
        h = fit(model, tr, va, epochs=6, optimizer=opt, scheduler=sched, checkpoint=checkpoint,
                resume=resume, progress=False, on_epoch_end=interrupt)
        return model, h

    full, h_full = run()
    ckpt = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        run(ckpt, stop_after=3)
    resumed, h_res = run(ckpt, resume=True)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    pd.testing.assert_frame_equal(h_full.drop(columns="seconds"), h_res.drop(columns="seconds"))


def test_nan_loss_is_a_clear_error_and_keeps_last_checkpoint(tmp_path):
    x = torch.randn(32, 4)
    y = torch.zeros(32).long()
    x[20] = float("nan")
    tr = DataLoader(TensorDataset(x, y), batch_size=8)
    ckpt = tmp_path / "c.pt"
    clean = DataLoader(TensorDataset(x[:16], y[:16]), batch_size=8)
    fit(net(), clean, epochs=1, checkpoint=ckpt, progress=False)
    before = ckpt.read_bytes()
    with pytest.raises(ValueError, match=r"NaN or infinite values \(epoch 0, batch 2\)"):
        fit(net(), tr, epochs=1, checkpoint=ckpt, overwrite=True, progress=False)
    assert ckpt.read_bytes() == before
    # a finite input that overflows the loss is still a divergence error
    huge = DataLoader(TensorDataset(torch.full((8, 4), 1e38), y[:8]), batch_size=8)
    overflowing = nn.Linear(4, 2)
    nn.init.constant_(overflowing.weight, 10.0)
    with pytest.raises(FloatingPointError, match=r"loss is .* \(epoch 0, batch 0\): training diverged"):
        fit(overflowing, huge, epochs=1, progress=False)


def test_labels_beyond_the_head_are_a_clear_error():
    tr = DataLoader(TensorDataset(torch.randn(8, 4), torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])), batch_size=8)
    with pytest.raises(ValueError, match="outputs 2 classes"):
        fit(net(), tr, epochs=1, progress=False)


def test_checkpoint_of_another_model_is_a_clear_error(tmp_path):
    tr, _ = loaders()
    fit(net(), tr, epochs=1, checkpoint=tmp_path / "c.pt", progress=False)
    other = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    with pytest.raises(ValueError, match="does not fit this model"):
        fit(other, tr, epochs=2, checkpoint=tmp_path / "c.pt", resume=True, progress=False)


def test_early_stopping_restores_best_weights():
    tr, va = loaders()
    seen = []
    model = net()
    h = fit(model, tr, va, epochs=50, lr=0.5, early_stopping=2, monitor="val_loss", seed=0, progress=False,
            on_epoch_end=lambda e, row: seen.append(row["val_loss"]))
    assert len(h) < 50
    best = min(seen)
    model.eval()
    with torch.no_grad():
        x, y = va.dataset.tensors
        loss = nn.functional.cross_entropy(model(x), y).item()
    assert loss == pytest.approx(best, rel=1e-5)
    with pytest.raises(ValueError, match="monitor='val_loss' is not a history column"):
        fit(net(), tr, epochs=2, early_stopping=1, monitor="val_loss", progress=False)


def test_one_cycle_is_onecyclelr_with_each_groups_peak_stepped_per_batch():
    # the notebooks' recipe written out by hand, against the helper: same weights, same history
    def run(by_hand):
        model, (tr, _) = net(), loaders()
        opt = two_groups(model)
        sched = (torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[1e-3, 1e-2], total_steps=3 * len(tr),
                                                     pct_start=0.2) if by_hand else one_cycle(pct_start=0.2))
        h = fit(model, tr, epochs=3, optimizer=opt, scheduler=sched, seed=0, progress=False,
                **({"scheduler_step": "batch"} if by_hand else {}))
        return model, h, opt

    a, h_a, opt_a = run(by_hand=True)
    b, h_b, opt_b = run(by_hand=False)
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(x, y)
    pd.testing.assert_frame_equal(h_a.drop(columns="seconds"), h_b.drop(columns="seconds"))
    assert h_b["lr"].iloc[0] == pytest.approx(1e-2 / 25)                       # warm-up starts at peak / 25
    assert [g["lr"] for g in opt_b.param_groups][1] == pytest.approx(10 * opt_b.param_groups[0]["lr"])


def test_one_cycle_refuses_what_it_sets_itself():
    tr, _ = loaders()
    with pytest.raises(ValueError, match="one_cycle counts batches"):
        fit(net(), tr, epochs=1, scheduler=one_cycle(), scheduler_step="epoch", progress=False)
    with pytest.raises(ValueError, match=r"do not pass \['max_lr'\]"):
        one_cycle(max_lr=0.1)
    assert repr(one_cycle(pct_start=0.1)) == "one_cycle(pct_start=0.1)"


def test_batch_scheduler_and_options():
    tr, va = loaders()
    model = net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    h = fit(model, tr, va, epochs=2, optimizer=opt, progress=False, scheduler_step="batch",
            scheduler=lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=2 * len(tr)),
            grad_clip=1.0, batchnorm_eval=True, device="cpu")
    assert len(h) == 2 and h["lr"].iloc[0] != h["lr"].iloc[1]
    with pytest.raises(ValueError, match="scheduler_step"):
        fit(net(), tr, epochs=1, scheduler_step="step", progress=False)
    empty = DataLoader(TensorDataset(torch.randn(3, 4), torch.zeros(3).long()), batch_size=8, drop_last=True)
    with pytest.raises(ValueError, match="no batches"):
        fit(net(), empty, epochs=1, progress=False)


def test_deterministic_seeded_runs_are_identical():
    results = []
    for _ in range(2):
        tr, va = loaders()
        results.append(fit(net(), tr, va, epochs=3, seed=7, deterministic=True, progress=False))
    assert not torch.are_deterministic_algorithms_enabled()  # fit put the process-wide switch back
    pd.testing.assert_frame_equal(results[0].drop(columns="seconds"), results[1].drop(columns="seconds"))
    tr, va = loaders()
    other = fit(net(), tr, va, epochs=3, seed=8, deterministic=True, progress=False)
    assert not other["train_loss"].equals(results[0]["train_loss"])  # the seed is what made them equal


def test_time_to_accuracy():
    h = pd.DataFrame({"val_accuracy": [0.5, 0.95], "seconds": [2.0, 3.0]})
    assert time_to_accuracy(h, 0.9) == 5.0 and math.isinf(time_to_accuracy(h, 0.99))


def test_lr_finder_sweeps_restores_weights_and_stops_on_divergence():
    torch.manual_seed(0)
    x = torch.randn(512, 8)
    y = (x[:, 0] - x[:, 1] > 0).long()
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    curve = lr_finder(model, loader, start_lr=1e-5, end_lr=10.0, steps=60)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # weights and BN stats
    assert curve["lr"].is_monotonic_increasing and curve["lr"].iloc[0] == pytest.approx(1e-5)
    assert len(curve) < 60  # the loss blew up before 10.0 and the sweep stopped
    assert curve["smoothed_loss"].min() < curve["smoothed_loss"].iloc[0]
    lr = suggest_lr(curve)
    assert 1e-4 < lr < 1.0
    # the suggestion trains: a fresh fit at that LR learns the task
    h = fit(model, loader, loader, epochs=3, lr=lr, seed=0, progress=False)
    assert h["val_accuracy"].iloc[-1] > 0.9


def test_lr_finder_rejects_frozen_models_and_bad_steps():
    loader = DataLoader(TensorDataset(torch.randn(8, 2), torch.tensor([0, 1] * 4)), batch_size=4)
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        lr_finder(frozen, loader)
    with pytest.raises(ValueError, match="steps"):
        lr_finder(nn.Linear(2, 2), loader, steps=1)
    with pytest.raises(ValueError, match="empty"):
        suggest_lr(pd.DataFrame({"lr": [], "smoothed_loss": []}))


def test_models_returning_logits_and_aux_train_and_find_lr():
    class WithAux(nn.Module):  # like Inception v3 in train mode
        def __init__(self):
            super().__init__()
            self.main, self.aux = nn.Linear(2, 2), nn.Linear(2, 2)

        def forward(self, x):
            return (self.main(x), self.aux(x)) if self.training else self.main(x)

    torch.manual_seed(0)
    x = torch.randn(64, 2)
    dl = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=16, shuffle=True)
    h = fit(WithAux(), dl, dl, epochs=10, lr=0.1, seed=0, progress=False)
    assert h["val_accuracy"].iloc[-1] > 0.9
    assert len(lr_finder(WithAux(), dl, steps=10)) == 10


def test_fit_reports_pixel_accuracy_for_segmentation_outputs():
    # a 1x1 convolution learns to label the pixels of a two-colour image; the accuracy is per pixel
    torch.manual_seed(0)
    x = torch.zeros(8, 1, 4, 4)
    x[:, :, :, 2:] = 1.0
    y = (x[:, 0] > 0.5).long()
    y[0, 0, 0] = -100   # ignored pixels are not counted
    net = torch.nn.Conv2d(1, 2, 1)
    h = fit(net, DataLoader(TensorDataset(x, y), batch_size=4), epochs=30, lr=0.1, progress=False)
    assert h["train_accuracy"].iloc[-1] == 1.0 and h["train_accuracy"].iloc[0] < 1.0


def test_mixed_precision_trains_in_bfloat16_keeps_float32_weights_and_follows_the_environment(monkeypatch):
    from tlhelpers import settings

    tr, va = loaders()
    model = net()
    with settings.mixed_precision("cpu", enabled=True):
        assert model(torch.randn(2, 4)).dtype == torch.bfloat16
        history = fit(model, tr, va, epochs=30, lr=0.05, seed=0, progress=False)
    assert history["val_accuracy"].iloc[-1] > 0.8
    assert all(p.dtype == torch.float32 for p in model.parameters())
    # the variable overrides the hardware check; off means plain float32
    monkeypatch.setenv("TLHELPERS_MIXED_PRECISION", "0")
    with settings.mixed_precision("cpu"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    monkeypatch.setenv("TLHELPERS_MIXED_PRECISION", "1")
    with settings.mixed_precision("cpu"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    monkeypatch.setenv("TLHELPERS_MIXED_PRECISION", "fast")
    with pytest.raises(ValueError, match="TLHELPERS_MIXED_PRECISION"):
        settings.mixed_precision("cpu")
    monkeypatch.delenv("TLHELPERS_MIXED_PRECISION")
    assert isinstance(settings.native_bf16("cpu"), bool)
    with pytest.raises(ValueError, match="meta"):
        settings.mixed_precision("meta", enabled=True)


def test_describe_precision_says_what_the_hardware_and_the_override_decided(monkeypatch):
    from tlhelpers import settings

    monkeypatch.delenv(settings.PRECISION_ENV, raising=False)
    for native in (True, False):
        monkeypatch.setattr(settings, "native_bf16", lambda device=None, native=native: native)
        monkeypatch.delenv(settings.PRECISION_ENV, raising=False)
        plain = settings.describe_precision("cpu")
        assert plain == ("on: this CPU has bfloat16 units" if native
                         else "off: this CPU has no bfloat16 units, so everything runs in float32")
        monkeypatch.setenv(settings.PRECISION_ENV, "0" if native else "1")   # the other way round
        forced = settings.describe_precision("cpu")
        assert settings.PRECISION_ENV in forced and forced.startswith("off" if native else "on")
        assert "emulated" in forced or "float32" in forced
    monkeypatch.setenv(settings.PRECISION_ENV, "maybe")
    with pytest.raises(ValueError, match="use 1"):
        settings.describe_precision("cpu")
