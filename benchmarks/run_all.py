"""Run the benchmarks and assemble benchmarks/RESULTS.md from their fragments.

``python -m benchmarks.run_all`` runs every ``bench_*.py``; name some to run a subset
(``python -m benchmarks.run_all baselines neighbors``); options such as ``--quick`` are passed to every
benchmark's ``main(argv)``. Fragments of benchmarks not run are kept.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

from benchmarks.common import RESULTS_DIR, machine

HERE = Path(__file__).resolve().parent
ORDER = ["shortfalls", "baselines", "neighbors", "factorization", "neural", "hinge", "two_tower_context", "sequential",
         "ctr", "ctr_frappe_defaults", "cold_start", "implicit_to_explicit", "blend", "graph_filters",
         "ease_gowalla_tuning", "graph_filters_ml100k", "filters_more", "serving", "ray", "ray_train"]


def assemble() -> Path:
    parts = []
    names = sorted(p.stem for p in RESULTS_DIR.glob("*.md"))
    for name in [n for n in ORDER if n in names] + [n for n in names if n not in ORDER]:
        parts.append((RESULTS_DIR / f"{name}.md").read_text().rstrip())
    text = (
        "# Benchmark results\n\n"
        "Every row names its protocol (see README). Peers run side by side with recforge in the same\n"
        "process on the same split and machine; times are medians of at least 3 runs unless stated.\n"
        "Regenerate with `make bench` (or `python -m benchmarks.run_all NAME...`).\n\n"
        + "\n\n".join(parts) + "\n"
    )
    from recforge.io import atomic_write

    with atomic_write(HERE / "RESULTS.md") as fh:
        fh.write(text)
    return HERE / "RESULTS.md"


def main(argv: list[str]) -> int:
    available = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    passed = [a for a in argv if a.startswith("-")]  # options such as --quick reach every benchmark
    chosen = [a for a in argv if not a.startswith("-")] or available
    unknown = [c for c in chosen if c not in available]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    print(f"machine: {machine()}")
    for name in chosen:
        t0 = time.perf_counter()
        importlib.import_module(f"benchmarks.bench_{name}").main(passed)
        print(f"bench_{name}: {time.perf_counter() - t0:.1f} s")
    print(f"wrote {assemble()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
