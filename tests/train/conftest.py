"""Fixtures of the train-stage tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from train_helpers import make_tiny_h5


@pytest.fixture(scope="session")
def tiny_h5(tmp_path_factory) -> Path:
    return make_tiny_h5(tmp_path_factory.mktemp("data") / "tiny.h5")
