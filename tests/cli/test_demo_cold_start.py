"""The demo's cold-start scene: constraints first, then five ratings change the list (no refit)."""

from __future__ import annotations

import re

import pytest
from rich.console import Console

from recforge.demo import _cold_start_scene


@pytest.mark.slow
def test_five_ratings_change_the_constrained_list(ml100k):
    console = Console(record=True, width=200)
    _cold_start_scene(console, ml100k)
    text = console.export_text()
    assert "answered by onboarding-knn" in text
    before, after = text.split("then rates", 1)
    first = re.findall(r"^\s+\d\. (.+)$", before, flags=re.MULTILINE)
    second = re.findall(r"^\s+\d\. (.+)$", after, flags=re.MULTILINE)
    assert len(first) == 5 and len(second) == 5
    assert first != second
    rated = {"Star Wars (1977)", "Return of the Jedi (1983)", "Empire Strikes Back, The (1980)"}
    assert not rated & set(second)  # rated movies are not recommended back
