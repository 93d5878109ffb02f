"""CLI verbs over experiment files: ``run``, ``compare``, ``export``, ``plot embeddings``, ``tune``.

``register(app)`` adds them to the main typer app (``recforge.cli.main`` calls it once).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from recforge.cli._common import Backend, FormatOpt, SetOpt, backend_options, console, err_console, handle_errors
from recforge.cli._output import ProgressOpt, Report, Section, check_format, emit, progress_reporter, result_report

LoggerOpt = Annotated[str | None, typer.Option("--logger", help="csv | tensorboard | wandb | mlflow | none")]
OutputOpt = Annotated[Path | None, typer.Option("--output", help="output folder")]
# where fitting runs (train and run): torch models train through Ray Train, ials on Ray actors
TrainBackendOpt = Annotated[str | None, typer.Option(
    "--backend", help="local | ray: fit torch models (Ray Train, DDP) and ials (Ray actors) on a Ray cluster")]
TrainWorkersOpt = Annotated[int | None, typer.Option("--workers", min=1, help="Ray workers of a --backend ray fit")]
TrainAddressOpt = Annotated[str | None, typer.Option(
    "--address",
    help="Ray cluster to join (auto, host:6379, ray://host:10001); default: $RAY_ADDRESS or a local one")]


def train_flags(backend: str | None, workers: int | None, address: str | None) -> dict[str, Any]:
    """The ``--backend/--workers/--address`` flags as ``[training]`` keys for :func:`read_spec`."""
    if backend is not None and backend not in ("local", "ray"):
        from recforge.errors import ConfigError

        raise ConfigError(f"--backend {backend!r}: use local or ray")
    return {"training.backend": backend, "training.workers": workers, "training.address": address}


def _spec(file: Path, sets: list[str] | None, seed: int | None, device: str | None, threads: int | None = None,
          **training: Any) -> Any:
    """The experiment file with the flags and ``--set`` pairs applied (the same schema and rules as ``--config``)."""
    from recforge.config import parse_sets
    from recforge.experiments import ExperimentSpec

    spec = ExperimentSpec.from_file(file).replace(seed=seed, device=device, threads=threads, **training)
    return spec.with_sets(parse_sets(sets))


def _data_note(line: str) -> None:
    """A loader note (``data: ...``) on stderr, as ``evaluate`` and ``train`` print them."""
    err_console.print(escape(line), highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``run``, ``compare``, ``export``, ``plot`` (``embeddings``, ``learning-curve``) and ``tune`` to ``app``."""
    plot_app = typer.Typer(no_args_is_help=True, help="Plots of fitted models: embeddings (UMAP), learning curves.")
    app.add_typer(plot_app, name="plot")

    @app.command("run")
    @handle_errors
    def run_cmd(
        file: Annotated[Path, typer.Argument(help="experiment file (TOML or YAML)")],
        logger: LoggerOpt = None,
        output: OutputOpt = None,
        seed: Annotated[int | None, typer.Option(help="override the file's seed")] = None,
        device: Annotated[str | None, typer.Option(help="cpu | cuda | auto")] = None,
        threads: Annotated[int | None, typer.Option(help="CPU threads for training and scoring")] = None,
        set_: SetOpt = None,
        no_outputs: Annotated[bool, typer.Option("--no-outputs", help="results only: no model, export, plots")] = False,
        fmt: FormatOpt = "table",
        progress: ProgressOpt = None,
        backend: TrainBackendOpt = None,
        workers: TrainWorkersOpt = None,
        address: TrainAddressOpt = None,
    ) -> None:
        """Run an experiment file: fit, evaluate under its protocol, log, save, export, plot."""
        from recforge.experiments import run

        check_format(fmt)
        train_flags(backend, workers, address)
        spec = _spec(file, set_, seed, device, threads, backend=backend, workers=workers, address=address)
        echo = (lambda s: err_console.print(s, highlight=False)) if fmt != "table" else \
            (lambda s: console.print(s, highlight=False))
        from recforge.training.progress import reporting

        with reporting(progress_reporter(progress, fmt)):
            res = run(spec, logger=logger, output=output, echo=echo, outputs=not no_outputs, data_echo=_data_note)
        summ = res.result.summary
        # scenario/revealed tell the cold-start protocol's rows apart
        cols = ["model", "scenario", "revealed", "utility", "normalize", *res.result.metric_columns(), "fit_seconds",
                "predict_seconds"]
        proto = summ["protocol"].iloc[0]
        where = f"outputs in {res.output_dir}" + (f"; run logged in {res.log_dir}" if res.log_dir else "")
        emit(result_report(res.result, f"{spec.name}: {proto} on {summ['dataset'].iloc[0]}", columns=cols,
                           footer=[where],
                           data={"name": spec.name, "metrics": res.metrics, "timings": res.timings,
                                 "utility": summ["utility"].iloc[0] if "utility" in summ else None,
                                 "normalize": spec.normalize,
                                 "output_dir": str(res.output_dir),
                                 "log_dir": str(res.log_dir) if res.log_dir else None,
                                 "files": {k: [str(p) for p in v] for k, v in res.files.items()},
                                 "notes": res.result.notes}), fmt)

    @app.command("compare")
    @handle_errors
    def compare_cmd(
        files: Annotated[list[Path], typer.Argument(help="two or more experiment files (same dataset and protocol)")],
        baseline: Annotated[str | None, typer.Option(help="name of the reference experiment (default: the first)")] = None,
        logger: LoggerOpt = None,
        output: OutputOpt = None,
        with_outputs: Annotated[bool, typer.Option("--with-outputs", help="also write each run's model/exports/plots")] = False,
        fmt: FormatOpt = "table",
        progress: ProgressOpt = None,
    ) -> None:
        """Run several experiments on the same split; one table with paired significance tests per metric."""
        from recforge.experiments import compare

        check_format(fmt)
        echo = (lambda s: err_console.print(s, highlight=False))
        from recforge.training.progress import reporting

        with reporting(progress_reporter(progress, fmt)):
            res = compare(files, baseline=baseline, logger=logger, output=output, outputs=with_outputs, echo=echo)
        table = res.table()
        keys = tuple(c for c in ("model", "experiment", "name") if c in table.columns)[:1]
        footer = [f"p(t): paired t-test, p(W): Wilcoxon signed-rank; each model vs {res.baseline}, paired over "
                  "users (rating protocols: over test ratings, on absolute errors)",
                  f"wrote {res.output_dir}/comparison.md"]
        emit(Report([Section(table, f"comparison ({res.result.table['protocol'].iloc[0]}), baseline {res.baseline}",
                             keys)], list(res.result.notes), footer,
                    data={"baseline": res.baseline, "table": table.to_dict(orient="records"),
                          "tests": res.tests.to_dict(orient="records"), "output_dir": str(res.output_dir)}), fmt)

    @app.command("export")
    @handle_errors
    def export_cmd(
        model_path: Annotated[Path, typer.Argument(help="a model saved by `recforge train` or `run` (.npz)")],
        format_: Annotated[str, typer.Option("--format", help="onnx | npz | auto (onnx for torch models)")] = "auto",
        output: OutputOpt = None,
        quantize: Annotated[str | None, typer.Option(
            "--quantize", help="int8: dynamic int8 quantization of a CTR model's ONNX graph (faster serving; "
                               "its order-agreement with the float graph is checked and recorded)")] = None,
    ) -> None:
        """Export a saved model: ONNX scoring graph (torch models, parity-checked) or npz + JSON."""
        from recforge.export import export_model
        from recforge.models.base import Recommender

        model = Recommender.load(model_path)
        out = output or model_path.with_suffix("").parent / f"{model_path.stem}-{format_}"
        paths = export_model(model, out, format=format_, **({"quantize": quantize} if quantize else {}))
        for p in paths:
            console.print(f"wrote {p}")
        meta = out / "model.json"
        if meta.exists():
            parity = json.loads(meta.read_text()).get("parity_max_abs_diff")
            if parity:
                console.print(f"onnxruntime parity (max abs diff): {parity}")
            q = json.loads(meta.read_text()).get("quantized")
            if q:
                console.print(f"int8 graph: Spearman {q['spearman_logit']:.4f} with the float graph's logits, "
                              f"max abs diff {q['max_abs_diff_vs_float']}")

    @plot_app.command("embeddings")
    @handle_errors
    def plot_embeddings_cmd(
        model_path: Annotated[Path, typer.Argument(help="a saved model (.npz) with embeddings")],
        dataset: Annotated[str | None, typer.Option(help="dataset for titles and genres (e.g. ml-100k)")] = None,
        which: Annotated[str, typer.Option(help="items or users")] = "items",
        color_by: Annotated[str, typer.Option(help="popularity, genre or a feature column")] = "popularity",
        seed: int = 0,
        max_points: Annotated[int | None, typer.Option(help="draw at most this many (most popular)")] = None,
        output: OutputOpt = None,
    ) -> None:
        """UMAP of a model's item or user embeddings: PNG and interactive HTML (titles on hover)."""
        from recforge.models.base import Recommender
        from recforge.viz import plot_model_embeddings

        model = Recommender.load(model_path)
        data = None
        if dataset:
            from recforge.data import load

            data = load(dataset).interactions
        paths = plot_model_embeddings(model, output or Path("plots"), data=data, which=which, color_by=color_by,
                                      seed=seed, max_points=max_points)
        for p in paths:
            console.print(f"wrote {p}")

    @plot_app.command("learning-curve")
    @handle_errors
    def plot_curve_cmd(
        model_path: Annotated[Path, typer.Argument(help="a saved model (.npz) that kept a per-epoch history")],
        output: Annotated[Path, typer.Option(help="PNG path")] = Path("plots/learning_curve.png"),
    ) -> None:
        """Per-epoch training loss and validation metrics of a saved model."""
        from recforge.errors import ConfigError
        from recforge.models.base import Recommender
        from recforge.experiments.runner import epoch_history
        from recforge.viz import plot_learning_curve

        model = Recommender.load(model_path)
        hist = epoch_history(model)
        if hist is None:
            raise ConfigError(f"{model_path}: the model kept no per-epoch history")
        console.print(f"wrote {plot_learning_curve(hist, output, title=f'{model.name}: learning curve')}")

    @app.command("tune")
    @handle_errors
    @backend_options
    def tune_cmd(
        file: Annotated[Path, typer.Argument(help="experiment file with a [tune.space] table")],
        trials: Annotated[int | None, typer.Option(help="number of trials (default: [tune] n_trials)")] = None,
        timeout: Annotated[float | None, typer.Option(help="stop after this many seconds")] = None,
        output: OutputOpt = None,
        seed: Annotated[int | None, typer.Option(help="override the file's seed")] = None,
        storage: Annotated[str | None, typer.Option(
            help="--backend ray: Optuna storage the workers share, a database URL (e.g. postgresql://user@host/db; "
                 "needed across nodes) or a journal file (default: OUTPUT/optuna-journal.log)")] = None,
        set_: SetOpt = None,
        fmt: FormatOpt = "table",
        backend: Backend | None = None,
    ) -> None:
        """Optuna search over the file's `tune.space` table; writes the trials table and the best experiment file.

        With --backend ray, --workers trials run at a time on Ray workers sharing one study
        (pruning included) through --storage."""
        from recforge.errors import ConfigError
        from recforge.tuning import tune

        check_format(fmt)
        backend = backend or Backend()
        if storage is not None and not backend.is_ray:
            raise ConfigError("--storage is for --backend ray (the workers' shared study)")
        spec = _spec(file, set_, seed, None)
        echo = (lambda s: console.print(s, highlight=False)) if fmt == "table" else \
            (lambda s: err_console.print(s, highlight=False))
        if backend.is_ray:
            from recforge.distributed.tune import tune_ray

            res = tune_ray(spec, workers=backend.workers, address=backend.address, storage=storage,
                           n_trials=trials, output=output, timeout=timeout, echo=echo)
        else:
            res = tune(spec, n_trials=trials, output=output, timeout=timeout, echo=echo, data_echo=_data_note)
        keys = tuple(c for c in ("number", "trial") if c in res.trials.columns)[:1]
        emit(Report([Section(res.trials, f"{spec.name}: {res.metric} on validation ({res.direction})", keys)],
                    footer=[f"best {res.metric} = {res.best_value:.5g} with {res.best_params}",
                            f"wrote {res.best_file} (run it: recforge run {res.best_file})"],
                    data={"metric": res.metric, "direction": res.direction, "best_value": res.best_value,
                          "best_params": res.best_params, "best_file": str(res.best_file),
                          "trials": res.trials.to_dict(orient="records")}), fmt)
