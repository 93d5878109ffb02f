"""``recforge ui``: one-line errors for bad input, and a start that serves the app on the port asked."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")

from recforge.cli.main import app  # noqa: E402

runner = CliRunner()


def test_ui_without_anything_to_show_is_a_one_line_error():
    res = runner.invoke(app, ["ui"])
    assert res.exit_code == 2
    assert "nothing to show: pass --dataset NAME|FILE, --runs DIR or --model-path FILE" in res.output
    assert "Traceback" not in res.output


def test_ui_missing_model_file_is_a_one_line_error(tmp_path):
    res = runner.invoke(app, ["ui", "--model-path", str(tmp_path / "nope.npz")])
    assert res.exit_code == 2 and "nope.npz: no such model file" in res.output


def test_ui_model_without_dataset_is_refused(tmp_path):
    res = runner.invoke(app, ["ui", "--runs", str(tmp_path), "--model", "popularity"])
    assert res.exit_code == 2 and "--model fits on a dataset: pass --dataset too" in res.output


def test_ui_starts_the_app_on_the_given_port(tmp_path, monkeypatch):
    import recforge.serving.run as run_mod

    seen = {}
    monkeypatch.setattr(run_mod, "serve", lambda application, host, port, log_level: seen.update(
        app=application, host=host, port=port))
    csv = tmp_path / "log.csv"
    csv.write_text("user_id,item_id\n1,2\n1,3\n2,3\n3,2\n3,4\n")
    res = runner.invoke(app, ["ui", "--dataset", str(csv), "--model", "popularity", "--port", "8123",
                              "--runs", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "recforge ui on http://127.0.0.1:8123/" in res.output and "popularity" in res.output
    assert seen["port"] == 8123 and seen["host"] == "127.0.0.1"
    state = seen["app"].state.ui
    assert [m.label for m in state.served] == ["popularity"] and state.dataset_name == "log"
    state.close()


def test_ui_serves_a_saved_model_file(tmp_path):
    from recforge.config import FitOptions
    from recforge.data import load_file
    from recforge.models.registry import make_model
    from recforge.ui import UIConfig, UIState

    csv = tmp_path / "log.csv"
    csv.write_text("user_id,item_id\n1,2\n1,3\n2,3\n3,2\n3,4\n")
    path = make_model("popularity", {}).fit(load_file(csv).interactions, FitOptions(seed=0)).save(tmp_path / "pop.npz")
    state = UIState.from_config(UIConfig(dataset=str(csv), model_paths=[str(path)]))
    try:
        (served,) = state.served
        assert served.label == "popularity" and served.state.bundle.path == str(path)
        assert served.version.startswith("popularity-")
    finally:
        state.close()
