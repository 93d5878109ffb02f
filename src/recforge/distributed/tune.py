"""``recforge tune --backend ray``: the Optuna search of an experiment file, trials run on Ray.

The driver prepares the search once (:func:`recforge.tuning.search.prepare_tuning`: the
``[tune.space]``, the training part and the validation part carved from it), creates the study in
an Optuna storage every worker reaches, and puts the prepared data into Ray's object store once.
Then ``workers`` Ray tasks (one CPU each) open the same study and run trials with the local
objective (:func:`recforge.tuning.search.make_objective`): each trial fits on the training part,
reports the validation metric every ``report_every`` epochs, and is pruned by the study's pruner
(``[tune] pruner``, median by default), which reads the other workers' reports from the storage.
The TPE sampler of each worker is seeded ``seed + worker``; it sees every finished trial in the
storage. The driver finally writes the same ``trials.csv``, ``trials.md`` and best experiment
file as the local search (:func:`recforge.tuning.search.finish_tuning`).

Storage: ``--storage URL`` (an SQLAlchemy URL, e.g. ``postgresql://user@host:5432/db``: needed
when workers run on several nodes), else an Optuna journal file in the output folder (one node).
Trials run in parallel, so which hyperparameters are tried (and pruned) depends on timing: unlike
the local search, a parallel search is not reproducible trial for trial; each trial's fit is.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recforge._optional import require
from recforge.errors import ConfigError, RecforgeError
from recforge.experiments.spec import ExperimentSpec
from recforge.tuning.search import (
    TuningResult,
    TuningSetup,
    create_study,
    finish_tuning,
    make_objective,
    prepare_tuning,
    trial_line,
)

__all__ = ["open_storage", "run_trials", "tune_ray"]


def open_storage(storage: str | Path) -> Any:
    """An Optuna storage: a database URL (``postgresql://``, ``sqlite:///``, ...; PostgreSQL
    through psycopg 3) or a journal file path (any other string)."""
    import optuna

    text = str(storage)
    if "://" in text:
        from recforge.serving.db import normalize_url

        return optuna.storages.RDBStorage(normalize_url(text), heartbeat_interval=None)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    Path(text).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(text))


def run_trials(setup: TuningSetup, storage: str, study_name: str, n_trials: int, seed: int,
               threads: int = 1) -> int:
    """One worker's share: open the shared study and run ``n_trials`` trials in it (the Ray task).

    Returns the number of trials this worker ran.
    """
    from recforge.distributed.cluster import worker_threads

    limiter = worker_threads(threads)
    spec = setup.spec.replace(threads=threads)
    setup = TuningSetup(**{**setup.__dict__, "spec": spec})
    study = create_study(setup, storage=open_storage(storage), study_name=study_name, sampler_seed=seed, load=True)
    before = len(study.trials)
    study.optimize(make_objective(setup), n_trials=n_trials, timeout=setup.timeout, catch=(RecforgeError,))
    del limiter
    return len(study.trials) - before


def tune_ray(spec: ExperimentSpec | str | Path, *, workers: int = 2, address: str | None = None,
             storage: str | Path | None = None, n_trials: int | None = None, output: str | Path | None = None,
             timeout: float | None = None, echo: Callable[[str], None] | None = None) -> TuningResult:
    """:func:`recforge.tuning.tune` with the trials run by ``workers`` Ray tasks sharing one study.

    Args:
        spec: An experiment with a ``[tune.space]`` table (or its file).
        workers: Parallel trials (one CPU each).
        address: A running Ray cluster (None: a local one on 127.0.0.1).
        storage: Optuna storage every worker reaches: a database URL or a journal file path
            (default: ``optuna-journal.log`` in the output folder; one node only).
        n_trials: Trials in all (default ``[tune] n_trials``), shared out among the workers.
        output: Output folder (default ``runs/<name>/tune``).
        timeout: Seconds after which workers start no new trial.
        echo: Receives one line per finished trial, and notes.

    Returns:
        The :class:`~recforge.tuning.search.TuningResult` (its ``study`` is the stored study).
    """
    require("optuna", purpose="tuning")
    ray = require("ray", purpose="--backend ray")
    from recforge.distributed.cluster import check_workers, cluster

    say = echo or (lambda s: None)
    check_workers(workers)
    if not isinstance(spec, ExperimentSpec):
        spec = ExperimentSpec.from_file(spec)
    setup = prepare_tuning(spec, n_trials=n_trials, timeout=timeout, echo=say)
    out = Path(output) if output is not None else spec.output_dir / "tune"
    where = str(storage) if storage is not None else str((out / "optuna-journal.log").resolve())
    if address and "://" not in where:
        say(f"note: the trials share a journal file ({where}); workers on other nodes need a shared "
            "database: pass --storage postgresql://...")
    study_name = f"{spec.name}-{uuid.uuid4().hex[:8]}"
    try:
        study = create_study(setup, storage=open_storage(where), study_name=study_name)
    except Exception as exc:  # noqa: BLE001 - a storage that cannot be opened: one line, not a traceback
        if isinstance(exc, RecforgeError):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split("[SQL:")[0][:200]
        raise ConfigError(f"tune storage {where!r}: {type(exc).__name__}: {first}") from None
    shares = [setup.n_trials // workers + (i < setup.n_trials % workers) for i in range(workers)]
    say(f"study {study_name} in {where}: {setup.n_trials} trials on {sum(s > 0 for s in shares)} Ray worker(s)")
    with cluster(address, workers):
        setup_ref = ray.put(setup)
        task = ray.remote(num_cpus=1, max_retries=0)(run_trials)
        futures = [task.remote(setup_ref, where, study_name, share, spec.seed + i)
                   for i, share in enumerate(shares) if share > 0]
        _wait(ray, futures, study, setup.metric, say)
    study = create_study(setup, storage=open_storage(where), study_name=study_name, load=True)
    return finish_tuning(setup, study, out)


def _wait(ray: Any, futures: list[Any], study: Any, metric: str, say: Callable[[str], None]) -> None:
    """Wait for the workers, echoing each trial as it finishes (read from the storage)."""
    import optuna

    done_states = {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL}
    told: set[int] = set()
    remaining = list(futures)
    while True:
        ready, remaining = ray.wait(remaining, num_returns=len(remaining), timeout=1.0) if remaining else ([], [])
        for ref in ready:
            try:
                ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, RecforgeError):
                    raise cause from None
                raise
        for t in study.get_trials(deepcopy=False):
            if t.number not in told and t.state in done_states:
                told.add(t.number)
                say(trial_line(t, metric))
        if not remaining:
            return
        time.sleep(0.2)
