"""benchmarks/map_ceiling.py: the GT mask at a map's resolution scores what that resolution allows."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "map_ceiling.py"


@pytest.fixture(scope="module")
def ceiling():
    sys.path.insert(0, str(SCRIPT.parent))  # the script imports its siblings _common and generalization
    try:
        spec = importlib.util.spec_from_file_location("map_ceiling_bench", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(SCRIPT.parent))


def test_full_resolution_mask_is_perfect_and_one_cell_is_chance(ceiling):
    # Two 16x16 images, each with an 8x8 object at a different place (box inclusive).
    mask = torch.zeros(2, 16, 16, dtype=torch.uint8)
    mask[0, 2:10, 4:12] = 1
    mask[1, 8:16, 0:8] = 1
    boxes = [torch.tensor([[4, 2, 11, 9]]), torch.tensor([[0, 8, 7, 15]])]
    scores = ceiling.ceiling_scores([{"mask": mask, "boxes": boxes}], sizes=[1, 16])
    assert scores["16x16"]["pxap"] == pytest.approx(100.0)
    assert scores["16x16"]["maxboxacc_v2"] == pytest.approx(100.0)
    # A 1x1 map is constant: PxAP is the positive-pixel rate, 64 / 256.
    assert scores["1x1"]["pxap"] == pytest.approx(25.0, abs=0.01)
    assert set(scores) == {"1x1", "16x16", "centre_gaussian", "uniform_noise"}
