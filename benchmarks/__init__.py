"""Benchmarks: recforge side by side with its peers, results in benchmarks/RESULTS.md."""
