from pathlib import Path

import pytest

from wsol_lightning.data.fakes import write_cub_layout


@pytest.fixture(scope="session")
def cub_parent(tmp_path_factory) -> Path:
    """A tiny official-layout CUB copy: <parent>/CUB_200_2011 (read-only for tests)."""
    parent = tmp_path_factory.mktemp("cub")
    write_cub_layout(parent, num_classes=3, images_per_class=8, with_segmentations=True, seed=0)
    return parent


@pytest.fixture
def cub_copy(cub_parent, tmp_path) -> Path:
    """A private, writable copy of the CUB_200_2011 folder (for corruption tests)."""
    import shutil

    dst = tmp_path / "CUB_200_2011"
    shutil.copytree(cub_parent / "CUB_200_2011", dst)
    return dst
