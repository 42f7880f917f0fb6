"""Scaling out: the fine-tuning recipe under torchrun (2 CPU processes, Gloo) and Optuna workers sharing SQLite."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch

from conftest import need
from tlhelpers import checkpoint, distributed, search

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
PY = sys.executable
RECIPE = ["hymenoptera", "--batch-size", "8", "--max-steps", "3", "--input-size", "64", "--trainable-blocks", "2"]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env.pop("WORLD_SIZE", None)
    return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The recipe once in one process and once in two (torchrun, Gloo on the CPU)."""
    mirror = os.environ.get("TLHELPERS_DATA_MIRROR", "")
    need(any((Path(p) / "hymenoptera_data").is_dir() for p in mirror.split(os.pathsep) if p),
         "TLHELPERS_DATA_MIRROR with hymenoptera_data/ (CI points it at ../shared/datasets)")
    out = tmp_path_factory.mktemp("ddp")
    one = subprocess.run([PY, "-m", "tlhelpers.distributed", *RECIPE, "--out", str(out / "one")],
                         capture_output=True, text=True, timeout=600, env=_env())
    torchrun = Path(PY).with_name("torchrun")
    two = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "tlhelpers.distributed",
                          *RECIPE, "--out", str(out / "two")], capture_output=True, text=True, timeout=600,
                         env=_env())
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, two.stderr[-3000:]
    return out, one.stdout, two.stdout


def test_both_ranks_end_with_identical_weights(runs):
    _, _, two = runs
    assert "world size 2, 3 steps" in two
    assert "all ranks hold identical weights: True" in two


def test_two_processes_compute_the_one_process_result(runs):
    out, one, two = runs
    a, info = checkpoint.load_model(out / "one" / "model.pt")
    b, _ = checkpoint.load_model(out / "two" / "model.pt")
    assert info["classes"] == ["ants", "bees"]
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-4, msg=name)   # float sums in another order
    assert sum(p.numel() for p in a.parameters()) > 1e6   # the whole network was compared
    loss = lambda text: float(text.rsplit("loss ", 1)[1].split(",")[0])   # noqa: E731
    assert loss(one) == pytest.approx(loss(two), abs=1e-4)


def test_global_batch_must_split_evenly(monkeypatch):
    monkeypatch.setattr(distributed, "setup", lambda: (0, 2, torch.device("cpu")))
    with pytest.raises(ValueError, match="batch_size 7 is not divisible by the 2 processes"):
        distributed.finetune("hymenoptera", batch_size=7)


def _worker(db, study, n, *, seconds, seed, heartbeat=1):
    return subprocess.Popen([PY, "-m", "tlhelpers.search", "--storage", f"sqlite:///{db}", "--study", study,
                             "--n-trials", str(n), "--seconds", str(seconds), "--seed", str(seed),
                             "--heartbeat", str(heartbeat)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())


def _trials(db, study):
    return optuna.load_study(study_name=study, storage=f"sqlite:///{db}").trials


def test_two_workers_share_one_study_without_running_a_trial_twice(tmp_path):
    db = tmp_path / "search.db"
    search.storage(f"sqlite:///{db}")   # create the schema once, before two processes race for it
    workers = [_worker(db, "shared", 12, seconds=0.2, seed=s) for s in (1, 2)]
    outs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), [e[-2000:] for _, e in outs]
    trials = _trials(db, "shared")
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert 12 <= len(complete) <= 13   # the other worker may finish the trial it was running
    assert len({t.number for t in trials}) == len(trials)
    assert len({tuple(sorted(t.params.items())) for t in complete}) == len(complete)


def test_a_killed_workers_trial_is_retried_not_lost(tmp_path):
    db = tmp_path / "search.db"
    search.storage(f"sqlite:///{db}")
    first = _worker(db, "resume", 6, seconds=2.0, seed=1)
    deadline = time.time() + 120
    while time.time() < deadline:   # kill it in the middle of its second trial
        try:
            states = [t.state for t in _trials(db, "resume")]
        except KeyError:   # the worker has not created the study yet
            states = []
        if len(states) >= 2 and states[-1] == optuna.trial.TrialState.RUNNING:
            break
        time.sleep(0.2)
    # a trial is RUNNING in the database a moment before its worker records the first heartbeat, and a
    # trial killed in that moment has none, so it can never be found stale: wait until it is under way
    # (the trial sleeps 2 s)
    time.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    time.sleep(3)   # longer than the grace period (2 heartbeats of 1 s): its trial is now stale
    second = _worker(db, "resume", 6, seconds=0.1, seed=2)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-2000:]
    trials = _trials(db, "resume")
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(failed) == 1 and len(complete) == 6, [(t.number, t.state) for t in trials]
    retried = [t for t in complete
               if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == failed[0].number]
    assert len(retried) == 1 and retried[0].params == failed[0].params   # re-run once, same parameters
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]


@pytest.mark.parametrize("url, spec, message", [
    ("search.db", "quadratic", "database URL"),
    ("sqlite://", "not a spec", "package.module:function"),
])
def test_bad_storage_or_objective_is_refused_clearly(url, spec, message):
    with pytest.raises(ValueError, match=message):
        search.main(["--storage", url, "--study", "s", "--n-trials", "1", "--objective", spec])


@pytest.mark.parametrize("space, error, message", [
    ({}, ValueError, "search space is empty"),
    ({"lr": []}, ValueError, "'lr' has no values"),
    ({"lr": 0.1}, TypeError, "must be a list"),
    ({"lr": [0.1, 0.1]}, ValueError, "twice"),
])
def test_an_empty_or_malformed_grid_is_refused_clearly(space, error, message):
    with pytest.raises(error, match=message):
        search.grid_sampler(space)
