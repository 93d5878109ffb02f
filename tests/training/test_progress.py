"""Progress (finding D14): the epoch loops, evaluation folds and user scoring report to the active
reporter; nothing is printed by models; the CLI is quiet off a terminal and with --format json."""

from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from recforge.cli.main import app
from recforge.data.interactions import Interactions
from recforge.evaluation.protocols import evaluate
from recforge.models.registry import make_model
from recforge.training.progress import NULL, ProgressReporter, ProgressTask, RichProgress, current, reporting


class Recorder(ProgressReporter):
    """Keeps every task's description, total and steps."""

    active = True

    def __init__(self) -> None:
        self.tasks: list[dict] = []

    def task(self, description: str, total: int | None = None) -> ProgressTask:
        rec = {"description": description, "total": total, "done": 0, "fields": {}, "closed": False}
        self.tasks.append(rec)

        class T(ProgressTask):
            def advance(self, n: int = 1, **fields) -> None:
                rec["done"] += n
                rec["fields"].update(fields)

            def close(self) -> None:
                rec["closed"] = True

        return T()


def _ratings() -> Interactions:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"u": rng.integers(0, 30, 400), "i": rng.integers(0, 20, 400),
                       "r": rng.integers(1, 6, 400).astype(float)}).drop_duplicates(["u", "i"])
    return Interactions.from_dataframe(df, user="u", item="i", rating="r")


def test_epochs_folds_and_users_are_reported_and_results_unchanged():
    data = _ratings()
    quiet = make_model("svd", {"epochs": 4}).fit(data)
    rec = Recorder()
    with reporting(rec):
        loud = make_model("svd", {"epochs": 4}).fit(data)
    assert current() is NULL  # the block restores the default
    epochs = [t for t in rec.tasks if t["description"] == "svd: epochs"]
    assert len(epochs) == 1 and epochs[0]["total"] == epochs[0]["done"] == 4 and epochs[0]["closed"]
    assert "train_loss" in epochs[0]["fields"]
    # the per-epoch path that progress needs trains the same model as the one-call fast path
    np.testing.assert_allclose(loud.predict([0, 1], [0, 1]), quiet.predict([0, 1], [0, 1]))

    rec = Recorder()
    with reporting(rec):
        evaluate(make_model("popularity"), data, "ratio-full", k=5)
    names = [t["description"] for t in rec.tasks]
    assert names[0] == "popularity ratio-full: folds" and "scoring users" in names
    users = rec.tasks[names.index("scoring users")]
    assert users["done"] == users["total"] > 0 and all(t["closed"] for t in rec.tasks)


def test_rich_progress_waits_before_drawing():
    bars = RichProgress(delay=3600)
    with reporting(bars):
        with current().task("x", 3) as t:
            t.advance()
        assert bars._bar is None  # nothing drawn in the first `delay` seconds


def test_cli_quiet_off_terminal_and_with_json_unless_asked(tmp_path, monkeypatch):
    import json

    import recforge.training.progress as progress

    p = tmp_path / "r.csv"
    _ratings().to_dataframe().rename(columns={"value": "rating"}).to_csv(p, index=False)
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'[dataset]\npath = "{p}"\nrating_col = "rating"\n')
    runner = CliRunner()
    base = ["evaluate", "--config", str(cfg), "--model", "svd", "--protocol", "rating-kfold5", "--set", "epochs=3"]
    for extra in ([], ["--format", "json"]):
        res = runner.invoke(app, [*base, *extra])
        assert res.exit_code == 0, res.output
        assert "epochs" not in res.stderr and "━" not in res.stderr

    class Now(RichProgress):  # draw at once: the test's fits take well under the 2 s delay
        def __init__(self, delay: float = 0.0, *, force: bool = False) -> None:
            super().__init__(0.0, force=force)

    monkeypatch.setattr(progress, "RichProgress", Now)
    res = runner.invoke(app, [*base, "--format", "json", "--progress"])
    assert res.exit_code == 0, res.output
    assert "svd: epochs" in res.stderr
    json.loads(res.stdout)  # the bars went to stderr: stdout is still the JSON document


def test_lightning_loop_reports_epochs():
    import pytest

    pytest.importorskip("lightning")
    rec = Recorder()
    with reporting(rec):
        make_model("mf-torch", {"epochs": 2}).fit(_ratings())
    epochs = [t for t in rec.tasks if t["description"].endswith(": epochs")]
    assert len(epochs) == 1 and epochs[0]["total"] == epochs[0]["done"] == 2 and epochs[0]["closed"]
    assert "train_loss" in epochs[0]["fields"]
