"""The README's "Any interaction log" section, run: the test writes a MovieLens-format ratings.csv
and a tab-separated Last.fm-style user_artists.dat, then runs every command of the section."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from recforge.cli.main import app

README = Path(__file__).resolve().parents[2] / "README.md"
runner = CliRunner()


def section_commands() -> list[tuple[str, int]]:
    """(command, expected exit status) of every ``recforge`` line in the section's code blocks;
    a trailing ``# exit 2: ...`` comment says the command must fail with status 2."""
    text = README.read_text()
    body = text.split("## Any interaction log", 1)[1].split("\n## ", 1)[0]
    out = []
    in_block = False
    for line in body.splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        if in_block and line.startswith("recforge "):
            cmd, _, comment = line.partition("  #")
            out.append((cmd.strip(), 2 if comment.strip().startswith("exit 2") else 0))
    return out


def write_examples(folder: Path) -> None:
    rng = np.random.default_rng(7)
    start = int(np.datetime64("2015-01-01", "s").astype(np.int64))
    end = int(np.datetime64("2020-12-31", "s").astype(np.int64))
    lines = ["userId,movieId,rating,timestamp"]
    for u in range(1, 61):
        for m in rng.choice(np.arange(1, 81), size=25, replace=False):
            lines.append(f"{u},{m * 10},{rng.integers(1, 11) / 2:g},{rng.integers(start, end)}")
    (folder / "ratings.csv").write_text("\n".join(lines) + "\n")
    rows = ["userID\tartistID\tweight"]
    for u in range(2, 42):
        for a in rng.choice(np.arange(51, 111), size=15, replace=False):
            rows.append(f"{u}\t{a}\t{int(rng.pareto(1.2) * 100) + 1}")
    (folder / "user_artists.dat").write_text("\n".join(rows) + "\n")


def test_section_has_both_examples() -> None:
    cmds = [c for c, _ in section_commands()]
    assert any("ratings.csv" in c for c in cmds) and any("user_artists.dat" in c for c in cmds)
    assert any(code == 2 for _, code in section_commands())


@pytest.mark.parametrize("command,code", section_commands(), ids=lambda v: str(v)[:60])
def test_readme_command_runs(command: str, code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_examples(tmp_path)
    monkeypatch.chdir(tmp_path)
    if "splits/ml/" in command:  # the section's split command writes these first
        res = runner.invoke(app, shlex.split("split --dataset ratings.csv --method temporal --n 2 --output splits/ml"))
        assert res.exit_code == 0, res.output
    args = shlex.split(command)[1:]
    res = runner.invoke(app, args)
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    if code == 2:
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and "needs explicit ratings" in errors[0], res.stderr
    elif args[:2] == ["data", "stats"]:
        assert ("explicit ratings (user=userId, item=movieId, rating=rating, timestamp=timestamp)" in res.stderr
                or "implicit feedback (user=userID, item=artistID, count=weight)" in res.stderr), res.stderr
