"""Hyperparameter search with many workers sharing one Optuna study in a database.

Chapter 8 runs its searches in memory, in one process. To spread a search
over processes or machines, give every worker the same study name and a
storage URL — a SQLite file on one machine, PostgreSQL or MySQL for a
cluster — and start as many workers as you like::

    python -m tlhelpers.search --storage sqlite:///search.db --study tiles --n-trials 60 \\
        --objective mypackage.objectives:tiles_head &
    python -m tlhelpers.search --storage sqlite:///search.db --study tiles --n-trials 60 \\
        --objective mypackage.objectives:tiles_head &

Each worker asks the database for the next trial, so no trial is run by two
workers. Workers send a heartbeat while a trial runs; when one dies (killed,
out of memory, machine lost), its trial is marked failed — by the next
worker to start a trial after the heartbeat has been missing for
``grace_period`` seconds — and queued again with the same parameters, and
whichever worker is free runs it. The search stops when
``n_trials`` trials have *completed*, whichever workers completed them;
workers busy with a trial at that moment finish it, so up to one extra trial
per other worker may complete.
"""

from __future__ import annotations

import argparse
import importlib
import time
import warnings
from collections.abc import Callable, Sequence

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback


def storage(url: str, *, heartbeat_interval: int = 10, grace_period: int | None = None,
            max_retry: int = 3) -> RDBStorage:
    """A relational storage whose trials are retried when their worker dies.

    ``url`` is an SQLAlchemy URL: ``sqlite:///search.db`` on one machine,
    ``postgresql://user:password@host/db`` or ``mysql://...`` for many.
    A worker's running trial is declared failed after ``grace_period``
    seconds without a heartbeat (default: twice the interval) and re-queued
    with the same parameters, at most ``max_retry`` times.

    Examples
    --------
    >>> from tlhelpers.search import storage
    >>> type(storage("sqlite://")).__name__   # in memory, for a quick look
    'RDBStorage'
    """
    if "://" not in url:
        raise ValueError(f"storage must be a database URL such as sqlite:///search.db, got {url!r}")
    with warnings.catch_warnings():   # heartbeats and retries are marked experimental in Optuna 4
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(url, heartbeat_interval=heartbeat_interval,
                          grace_period=grace_period or 2 * heartbeat_interval,
                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry))


def grid_sampler(space: dict[str, Sequence], *, seed: int | None = None) -> optuna.samplers.GridSampler:
    """Optuna's ``GridSampler`` over ``space`` (parameter name to its values), checked first.

    Optuna runs an empty space silently (every trial has no parameters) and
    answers an empty list of values with an error about an array ``'a'``;
    here both get an error that names the problem.

    Examples
    --------
    >>> from tlhelpers.search import grid_sampler
    >>> type(grid_sampler({"lr": [1e-3, 1e-2], "layer": ["blocks.5", "bn2"]})).__name__
    'GridSampler'
    """
    if not isinstance(space, dict) or not space:
        raise ValueError(f"the search space is empty ({space!r}): give at least one parameter and its values, "
                         f"e.g. {{'lr': [1e-3, 1e-2]}}")
    for name, values in space.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise TypeError(f"the values of {name!r} must be a list, not {type(values).__name__}")
        if len(values) == 0:
            raise ValueError(f"parameter {name!r} has no values to try: give it at least one")
        if len(set(map(repr, values))) < len(values):
            raise ValueError(f"parameter {name!r} lists a value twice: {list(values)}")
    return optuna.samplers.GridSampler(space, seed=seed)


def run_worker(objective: Callable[[optuna.Trial], float], url: str, study_name: str, *, n_trials: int,
               direction: str = "minimize", seed: int | None = None, heartbeat_interval: int = 10,
               grace_period: int | None = None) -> optuna.Study:
    """Join (or create) ``study_name`` at ``url`` and run trials until ``n_trials`` have completed.

    Start it in as many processes as you like; they share the work. ``seed``
    seeds this worker's sampler (give workers different seeds, or none).
    """
    if not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials must be a positive whole number of trials, not {n_trials!r}")
    store = storage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(study_name=study_name, storage=store, direction=direction,
                                sampler=sampler, load_if_exists=True)
    done = optuna.study.MaxTrialsCallback(n_trials, states=(optuna.trial.TrialState.COMPLETE,))
    if _completed(study) < n_trials:
        study.optimize(objective, callbacks=[done])
    return study


def _completed(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def quadratic(trial: optuna.Trial, *, seconds: float = 0.0) -> float:
    """A smoke-test objective: ``(x - 2)² + (y + 1)²``, optionally slowed to ``seconds`` per trial.

    It checks the machinery (storage, workers, retries) in seconds; put your
    own training in its place for a real search.

    Examples
    --------
    >>> import optuna
    >>> from tlhelpers.search import quadratic
    >>> quadratic(optuna.trial.FixedTrial({"x": 2.0, "y": -1.0}))
    0.0
    """
    x, y = trial.suggest_float("x", -10, 10), trial.suggest_float("y", -10, 10)
    time.sleep(seconds)
    return (x - 2) ** 2 + (y + 1) ** 2


def _load_objective(spec: str, seconds: float) -> Callable[[optuna.Trial], float]:
    if spec == "quadratic":
        return lambda trial: quadratic(trial, seconds=seconds)
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"--objective must be 'quadratic' or 'package.module:function', got {spec!r}")
    return getattr(importlib.import_module(module), name)


def main(argv: Sequence[str] | None = None) -> optuna.Study:
    """Command line for :func:`run_worker` (``python -m tlhelpers.search --help``)."""
    p = argparse.ArgumentParser(prog="python -m tlhelpers.search", description=__doc__.splitlines()[0])
    p.add_argument("--storage", required=True, help="database URL, e.g. sqlite:///search.db")
    p.add_argument("--study", required=True, help="study name shared by all workers")
    p.add_argument("--n-trials", type=int, required=True, help="completed trials to reach, over all workers")
    p.add_argument("--objective", default="quadratic",
                   help="'quadratic' (smoke test) or an importable 'package.module:function'")
    p.add_argument("--direction", default="minimize", choices=["minimize", "maximize"])
    p.add_argument("--seed", type=int, default=None, help="this worker's sampler seed")
    p.add_argument("--seconds", type=float, default=0.0, help="quadratic only: seconds per trial")
    p.add_argument("--heartbeat", type=int, default=10, help="seconds between a worker's heartbeats")
    a = p.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)   # heartbeats, retries
    study = run_worker(_load_objective(a.objective, a.seconds), a.storage, a.study, n_trials=a.n_trials,
                       direction=a.direction, seed=a.seed, heartbeat_interval=a.heartbeat)
    print(f"study {a.study!r}: {_completed(study)} trials completed; best value {study.best_value:.4g}",
          flush=True)
    return study


if __name__ == "__main__":
    main()
