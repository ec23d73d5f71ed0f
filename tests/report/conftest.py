"""Fixtures for the report tests: fake run directories built by report_fixtures."""

import pytest

from report_fixtures import make_prune_run, make_train_run


@pytest.fixture
def prune_run(tmp_path):
    """A prune run with 6 classes x 8 SNRs (small and fast)."""
    return make_prune_run(tmp_path / "prune", n_classes=6, snrs=list(range(-10, 20, 4)))


@pytest.fixture
def train_run(tmp_path):
    return make_train_run(tmp_path / "train")
