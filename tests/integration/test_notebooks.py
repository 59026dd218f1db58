"""Docs that run: every notebook in notebooks/ executes top to bottom (stored without outputs)."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
BUDGET_S = 180


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("notebook_cache")


def test_every_notebook_is_tested_and_stored_without_outputs():
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["evaluate_your_maps.ipynb", "predict_to_coco.ipynb", "quickstart.ipynb"]
    for name in names:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{name}: stored with outputs"


@pytest.mark.parametrize("name", ["quickstart.ipynb", "evaluate_your_maps.ipynb", "predict_to_coco.ipynb"])
def test_notebook_executes(name: str, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WSOL_CACHE_DIR", str(cache_dir))  # the kernel inherits it: no write to ~/.cache
    monkeypatch.setenv("WANDB_MODE", "disabled")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=BUDGET_S, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                   ).execute()
    elapsed = time.perf_counter() - start
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert elapsed < BUDGET_S, f"{name} took {elapsed:.0f} s"
    if name == "quickstart.ipynb":
        assert any((tmp_path / "quickstart_out" / "visualizations").glob("maps_epoch001.png"))
    if name == "predict_to_coco.ipynb":
        assert (tmp_path / "coco_out" / "predictions.json").is_file()
        assert (tmp_path / "coco_test" / "coco_eval.json").is_file()
