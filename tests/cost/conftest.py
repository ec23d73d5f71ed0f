"""Fixtures for the cost tests: an isolated cost cache."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_cost_cache(tmp_path_factory, monkeypatch):
    """Each test gets an empty on-disk cache and an empty in-process cache."""
    from amcprune.cost import clear_memory_cache

    monkeypatch.setenv("AMCPRUNE_CACHE_DIR", str(tmp_path_factory.mktemp("cost-cache")))
    clear_memory_cache()
    yield
    clear_memory_cache()
