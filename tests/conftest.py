"""Shared fixtures: offline environment, the shared data folder, a cached synthetic dataset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


def shared_dir() -> Path | None:
    """The workplace's shared/ folder (absent in a user's fresh clone)."""
    candidates = [os.environ.get("WSOL_SHARED_DIR"), REPO.parent / "shared", REPO.parent.parent / "shared"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide cache folder for generated synthetic datasets."""
    return tmp_path_factory.mktemp("synthetic_cache")
