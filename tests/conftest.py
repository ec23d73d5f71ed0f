"""Shared test settings: tests run on tiny generated data and tiny models.

One thread: for models this small, thread start-up and spin-waiting cost more than they save, and two
threads on a busy 2-core machine were measured 50x slower on the pruning tests.
"""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def isolated_cost_cache(tmp_path_factory, monkeypatch):
    """Every test gets an empty on-disk and in-process cost cache, never the user's ~/.cache."""
    from amcprune.cost import clear_memory_cache

    monkeypatch.setenv("AMCPRUNE_CACHE_DIR", str(tmp_path_factory.mktemp("cost-cache")))
    clear_memory_cache()
    yield
    clear_memory_cache()
