"""recforge data check: known answers on tiny logs the tests write."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from recforge.cli._checks import protocol_splits
from recforge.cli.main import app
from recforge.data.check import check_log, fit_power_law, guess_time_unit, read_log
from recforge.errors import DataError


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_counts_duplicates_ids_units_and_scale(tmp_path):
    p = _write(tmp_path, "log.csv", "user,item,score,ts\n"
               "a,x,4,1600000000000\n"
               "a,y,5,1600000001000\n"
               "a,x,3,1600000002000\n"  # repeats (a, x)
               "b,y,2,1600000003000\n"
               "b,z,1,1600000004000\n"
               "c,007,5,1600000005000\n")
    r = check_log(p)
    assert r.columns == {"user": "user", "item": "item", "rating": "score", "timestamp": "ts"}
    assert (r.n_rows, r.n_users, r.n_items, r.n_pairs) == (6, 3, 4, 5)
    assert (r.duplicate_rows, r.duplicate_pairs) == (1, 1)
    assert r.density == pytest.approx(5 / 12)
    assert r.user_ids == "string" and r.item_ids == "string"
    assert r.timestamp == {"unit": "milliseconds", "first": "2020-09-13T12:26:40",
                           "last": "2020-09-13T12:26:45", "n_bad": 0}
    assert r.rating["kind"] == "ratings" and (r.rating["min"], r.rating["max"], r.rating["step"]) == (1, 5, 1)
    assert r.per_user == {"min": 1, "median": 2.0, "mean": 5 / 3, "max": 2}
    assert any("1 rows repeat a (user, item) pair" in w for w in r.warnings)


@pytest.mark.parametrize("values, unit, first", [
    (["1600000000", "1600086400"], "seconds", "2020-09-13T12:26:40"),
    (["1600000000000000000", "1600000001000000000"], "nanoseconds", "2020-09-13T12:26:40"),
    (["2021-03-04", "2021-03-05"], "date", "2021-03-04T00:00:00+00:00"),
    (["2021-03-04 10:00:00", "2021-03-05 11:30:00"], "datetime", "2021-03-04T10:00:00+00:00"),
    (["1", "2"], "ordinal", 1.0),
])
def test_timestamp_unit_is_guessed(values, unit, first):
    facts = guess_time_unit(pd.Series(values))
    assert facts["unit"] == unit and facts["first"] == first and facts["n_bad"] == 0


def test_power_law_mle_recovers_the_exponent():
    x = np.random.default_rng(1).zipf(2.5, 20000)
    fit = fit_power_law(x)
    assert abs(fit.alpha - 2.5) < 3 * fit.alpha_se and fit.alpha_se < 0.05
    assert "Clauset" in fit.method
    assert fit_power_law([3] * 50) is None and fit_power_law([1, 2, 3]) is None


def test_given_split_cold_and_leakage_known_answer(tmp_path):
    train = _write(tmp_path, "train.csv", "user_id,item_id,timestamp\n1,a,10\n1,b,30\n2,a,5\n")
    test = _write(tmp_path, "test.csv", "user_id,item_id,timestamp\n1,c,20\n2,b,50\n3,a,60\n")
    r = check_log(train, test=test)
    f = r.protocols["given split"]
    # user 1's test row (t=20) is older than their train row b (t=30); user 3 and item c are cold
    assert (f["train_rows"], f["test_rows"]) == (3, 3)
    assert (f["cold_users"], f["cold_items"], f["test_rows_cold"]) == (1, 1, 2)
    assert (f["leak_rows_user"], f["leak_users"], f["leak_rows_global"]) == (1, 1, 1)
    assert any("older than a train row of the same user" in w for w in r.warnings)


def test_protocol_splits_random_leaks_latest_does_not(tmp_path):
    rows = [f"{u},{i},{u * 100 + i}" for u in range(20) for i in range(10)]
    p = _write(tmp_path, "log.csv", "user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    r = check_log(p, splits=protocol_splits())
    assert r.protocols["random 80/20"]["leak_rows_user"] > 0
    assert r.protocols["latest per user"]["leak_rows_user"] == 0
    assert r.protocols["latest per user"]["test_rows"] == 20
    assert r.protocols["latest 20% per user"]["leak_rows_user"] == 0
    # a global cut: no user's test row is older than their train rows, and nobody is cold here
    g = r.protocols["global time cut 80%"]
    assert g["leak_rows_user"] == 0 and g["cold_users"] == 4  # users 16-19 are entirely after the cut


def test_headerless_space_separated_and_constant_values(tmp_path):
    p = _write(tmp_path, "ratings.txt", "1 10 1\n1 11 1\n2 10 1\n3 12 1\n")
    df = read_log(p)
    assert df.attrs["sep"] == " " and list(df.columns) == ["0", "1", "2"]
    r = check_log(p)
    assert r.columns == {"user": "0", "item": "1", "rating": "2", "timestamp": None}
    tab = _write(tmp_path, "plays.dat", "userID\tartistID\tweight\n2\t51\t13883\n2\t52\t11690\n3\t51\t7\n")
    for sep in (None, "\\t", "tab", "\t"):
        t = check_log(tab, sep=sep)
        assert t.columns["user"] == "userID" and t.columns["item"] == "artistID" and t.n_rows == 3
    assert r.rating["kind"].startswith("constant")
    assert any("implicit feedback" in w for w in r.warnings)


def test_bad_input_is_one_line(tmp_path):
    p = _write(tmp_path, "log.csv", "who,what\n1,2\n")
    with pytest.raises(DataError, match="no user column found among who, what; name it with --user-col"):
        check_log(p)
    with pytest.raises(DataError, match="column 'uid' .* not in the file"):
        check_log(p, user_col="uid")
    with pytest.raises(DataError, match="no such file"):
        check_log(tmp_path / "nope.csv")
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(b"user_id,item_id\n1,Caf\xe9\n")
    with pytest.raises(DataError, match="not UTF-8"):
        check_log(bad)


def test_cli_text_json_and_plots(tmp_path):
    rows = [f"{u},{i},{1 + (u + i) % 5},{1_600_000_000 + u * 1000 + i}" for u in range(30) for i in range(u % 7 + 2)]
    p = _write(tmp_path, "log.csv", "userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    runner = CliRunner()
    res = runner.invoke(app, ["data", "check", str(p), "--plots", str(tmp_path / "plots")], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    # every line fits 80 columns, but a path longer than that (on a line of its own)
    long = [line for line in res.stdout.splitlines() if len(line) > 80 and " " in line.strip()]
    assert not long, long
    assert "timestamp unit           seconds" in res.stdout and "random 80/20" in res.stdout
    pngs = sorted(x.name for x in (tmp_path / "plots").iterdir())
    assert pngs == ["popularity_powerlaw.png", "ratings.png", "rows_over_time.png", "user_activity.png"]
    assert all((tmp_path / "plots" / n).read_bytes()[:4] == b"\x89PNG" for n in pngs)
    res = runner.invoke(app, ["data", "check", str(p), "--format", "json"])
    doc = json.loads(res.stdout)
    assert doc["columns"] == {"user": "userId", "item": "movieId", "rating": "rating", "timestamp": "timestamp"}
    assert doc["n_rows"] == len(rows) and doc["protocols"]["latest per user"]["leak_rows_user"] == 0
    res = runner.invoke(app, ["data", "check", str(p), "--user-col", "nope"])
    assert res.exit_code == 2 and "column 'nope'" in res.output and "Traceback" not in res.output
