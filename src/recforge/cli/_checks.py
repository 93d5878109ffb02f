"""``recforge data check``: the protocols' splits it examines and how its report is printed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from recforge.cli._output import Report, Section
from recforge.data.check import CheckReport, SplitMaker


def protocol_splits() -> dict[str, SplitMaker]:
    """The split each evaluation protocol family makes (seed 0), by the label the report shows."""
    from recforge.splits import split_by_name

    def make(method: str, **kw: Any) -> SplitMaker:
        return lambda data: split_by_name(method, data, seed=0, **kw)[0]

    return {
        "random 80/20": make("random"),
        "latest per user": make("loo"),
        "latest 20% per user": make("temporal"),
        "global time cut 80%": make("time"),
    }


#: Which protocols (and `recforge split --method`) make each split of :func:`protocol_splits`.
SPLIT_USERS = ("random 80/20: ratio-full, rating-kfold5 (a fold), split --method random; "
               "latest per user: loo-full, loo-sampled, split --method loo; "
               "latest 20% per user: split --method temporal; global time cut 80%: split --method time")


def signal_rows(signals: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """Two table rows per signal (``data stats`` and ``data check``): its kind and count, then its range."""
    rows = []
    for name, f in signals.items():
        total = f["count"] + f["missing"]
        rows.append((f"signal {name} ({f['kind']})", f"{f['count']:,} of {total:,} rows"
                     + (f", mean {f['mean']:.4g}" if f["count"] else ", all missing")))
        if f["count"]:
            rows.append(("  min / max / zeros", f"{f['min']:g} / {f['max']:g} / {f['zero_share']:.1%}"))
    return rows


def _power(p: Any) -> str:
    if p is None:
        return "no fit (fewer than 10 entities or all counts equal)"
    return f"alpha {p['alpha']:.3f} +- {p['alpha_se']:.3f}, x_min {p['x_min']}, tail {p['n_tail']:,}, KS {p['ks']:.3f}"


def check_report(report: CheckReport, plots: list[Path]) -> Report:
    """The check as a :class:`Report`: a summary, the protocols' cold/leakage table, warnings as notes."""
    d = report.to_dict()
    cols = ", ".join(f"{k}={v}" for k, v in d["columns"].items() if v is not None)
    rows: list[tuple[str, Any]] = [
        ("columns", cols), ("rows", f"{d['n_rows']:,}"), ("users", f"{d['n_users']:,}"),
        ("items", f"{d['n_items']:,}"), ("distinct pairs", f"{d['n_pairs']:,}"), ("density", d["density"]),
        ("duplicate rows", f"{d['duplicate_rows']:,}"), ("user ids", d["user_ids"]), ("item ids", d["item_ids"]),
    ]
    if d["missing"]:
        rows.append(("missing values", ", ".join(f"{k}: {v}" for k, v in d["missing"].items())))
    r = d["rating"]
    if r is not None:
        rows.append(("values", r["kind"]))
        if "min" in r:
            rows.append(("value range", f"{r['min']:g} to {r['max']:g}, {r['n_distinct']} distinct, step {r['step']:g}"))
    t = d["timestamp"]
    if t is not None:
        rows.append(("timestamp unit", t["unit"]))
        if t["unit"] != "ordinal":
            rows.append(("time range", f"{t['first']} to {t['last']}"))
    for who in ("user", "item"):
        s = d[f"per_{who}"]
        rows.append((f"per {who} min/median/max", f"{s['min']} / {s['median']:g} / {s['max']}"))
    rows += signal_rows(d.get("signals") or {})
    rows.append(("item popularity", _power(d["item_power_law"])))
    rows.append(("user activity", _power(d["user_power_law"])))
    summary = pd.DataFrame({"check": [x[0] for x in rows], "value": [x[1] for x in rows]}, dtype=object)
    sections = [Section(summary, report.name, keys=("check", "value"), inline=("value",))]
    if d["protocols"]:
        prot = []
        for label, f in d["protocols"].items():
            if "error" in f:
                prot.append({"protocol": label, "test rows": None, "cold users": None, "cold items": None,
                             "cold rows": None, "leak rows": None, "leak users": None, "n/a": f["error"]})
                continue
            prot.append({"protocol": label, "test rows": f["test_rows"], "cold users": f["cold_users"],
                         "cold items": f["cold_items"], "cold rows": f["test_rows_cold"],
                         "leak rows": f.get("leak_rows_user"), "leak users": f.get("leak_users"), "n/a": ""})
        frame = pd.DataFrame(prot)
        if not frame["n/a"].astype(bool).any():
            frame = frame.drop(columns=["n/a"])
        sections.append(Section(frame, "splits: cold users/items; leak = test rows older than a train row of "
                                       "the same user", keys=("protocol",)))
    footer = [f"warning: {w}" for w in report.warnings]
    if d["protocols"]:
        footer.append(f"splits (seed 0): {SPLIT_USERS}")
    if d["item_power_law"] or d["user_power_law"]:
        footer.append("power law: " + (d["item_power_law"] or d["user_power_law"])["method"])
    footer += [f"wrote {p}" for p in plots]
    data = {**d, "plots": [str(p) for p in plots]}
    return Report(sections, [], footer, data)
