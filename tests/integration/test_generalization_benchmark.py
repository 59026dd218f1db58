"""Smoke test of benchmarks/generalization.py on a tiny budget: one method, one dataset, 1 epoch, 32 px."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "generalization.py"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(SCRIPT.parent))  # the script imports its sibling _common
    try:
        spec = importlib.util.spec_from_file_location("generalization_bench", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(SCRIPT.parent))


def test_budget_split_and_run_paths(bench):
    assert bench.split_epochs(6, [2, 3, 4]) == [1, 2, 3]
    assert bench.split_epochs(6, [6]) == [6]
    assert bench.split_epochs(2, [2, 3, 4]) == [1, 1, 1]  # every phase trains at least one epoch
    config = {"a": "runs/ornet_synthetic/coarse.ckpt", "b": ["runs/x"], "c": "keep/runs/y"}
    assert bench.rewrite_runs(config, Path("/o")) == {"a": "/o/coarse.ckpt", "b": ["/o"], "c": "keep/runs/y"}


def test_phase_config_swaps_the_data_and_scales_the_warmup(bench, tmp_path: Path):
    import argparse

    args = argparse.Namespace(image_size=48, seed=3, pets_dir=tmp_path / "pets", cache_dir=tmp_path / "cache",
                              batch_size=16, val_every=2, pets_val_per_class=20)
    config = bench.phase_config("bas_synthetic", "clutter_biased", 2, args, tmp_path / "run",
                                [("model.init_args.beta", 2.0)])
    assert config["model"]["init_args"]["warmup_epochs"] == 1  # 3 of the recipe's 6 epochs -> 1 of 2
    assert config["model"]["init_args"]["beta"] == 2.0 and config["trainer"]["max_epochs"] == 2
    data = config["data"]
    assert data["class_path"].endswith("ClutterSyntheticDataModule") and data["init_args"]["image_size"] == 48
    assert data["init_args"]["background_bias"] == 0.7 and data["init_args"]["unbiased_test"] is False
    assert config["seed_everything"] == 3 and config["trainer"]["default_root_dir"] == str(tmp_path / "run")
    assert data["init_args"]["batch_size"] == 16 and config["trainer"]["check_val_every_n_epoch"] == 2
    pets = bench.phase_config("cam_synthetic", "pets", 3, args, tmp_path / "run", [])
    assert pets["data"]["init_args"]["val_per_class"] == 20 and pets["data"]["init_args"]["data_dir"] == str(
        tmp_path / "pets")
    assert pets["trainer"]["check_val_every_n_epoch"] == 1  # 2 does not divide 3: the last epoch must validate


def test_tiny_run_prints_the_table_with_baselines(bench, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    bench.main(["--methods", "cam", "--datasets", "synthetic", "--epochs", "1", "--image_size", "32",
                "--out", str(out), "--cache_dir", str(tmp_path / "cache")])
    table = (out / "table.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| dataset"))
    for column in ("top-1", "MaxBoxAccV2", "V2 outer", "PxAP", "PIoU", "centre V2", "whole V2", "centre PxAP",
                   "PxAP chance", "warnings"):
        assert f"| {column} |" in header
    metrics = json.loads((out / "results.json").read_text())["cam/synthetic"]["metrics"]
    row = next(line for line in table.splitlines() if line.startswith("| synthetic | cam |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    named = dict(zip([c.strip() for c in header.strip("|").split("|")], cells, strict=True))
    assert named["centre V2"] == f"{metrics['baseline_centre_maxboxacc_v2']:.1f}"
    assert named["PxAP chance"] == f"{metrics['pxap_chance']:.1f}"
    assert 0 < metrics["pxap_chance"] < 100 and named["MaxBoxAccV2"] == f"{metrics['maxboxacc_v2']:.1f}"
    assert "| synthetic | cam |" in capsys.readouterr().out


def test_map_ceiling_full_resolution_mask_is_perfect_and_one_cell_is_chance(bench):
    import torch
    from map_ceiling import ceiling_scores  # benchmarks/ is on sys.path while `bench` is in use

    # Two 16x16 images, each with an 8x8 object at a different place (boxes inclusive).
    mask = torch.zeros(2, 16, 16, dtype=torch.uint8)
    mask[0, 2:10, 4:12] = 1
    mask[1, 8:16, 0:8] = 1
    boxes = [torch.tensor([[4, 2, 11, 9]]), torch.tensor([[0, 8, 7, 15]])]
    scores = ceiling_scores([{"mask": mask, "boxes": boxes}], sizes=[1, 16])
    assert scores["16x16"]["pxap"] == pytest.approx(100.0)
    assert scores["16x16"]["maxboxacc_v2"] == pytest.approx(100.0)
    # A 1x1 map is constant: PxAP is the positive-pixel rate, 64 / 256.
    assert scores["1x1"]["pxap"] == pytest.approx(25.0, abs=0.01)
    assert set(scores) == {"1x1", "16x16", "centre_gaussian", "uniform_noise"}
