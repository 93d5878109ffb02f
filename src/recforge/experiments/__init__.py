"""Experiments: one file names the dataset, protocol, model, training options, logger and outputs.

``run(spec)`` fits and evaluates one experiment under its named protocol, logging the run and
writing results, the model, exports and plots; ``compare(specs)`` runs several on the same split
and tests the differences per user; ``recforge.tuning`` searches a spec's ``[tune.space]``.
"""

from __future__ import annotations

from recforge.experiments.compare import ComparisonResult, compare, paired_tests
from recforge.experiments.runner import ExperimentResult, run
from recforge.experiments.spec import ExperimentSpec, load_spec

__all__ = ["ComparisonResult", "ExperimentResult", "ExperimentSpec", "compare", "load_spec", "paired_tests", "run"]
