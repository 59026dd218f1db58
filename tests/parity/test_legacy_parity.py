"""Each paper's legacy protocol reproduces that paper's own eval code (issue 12, deviation 11).

Fixture: ``tests/fixtures/parity/common/legacy.pt``, written by ``tools/parity/legacy.py`` from local clones of
wpy1999/BAS (``BAS_inference.py``, CUB and ILSVRC), wpy1999/BAS-Extension (``WSOL/evaluator.py``) and
Sierkinhane/ORNet (``find_bbox`` and the IoU lines of ``train_2nd_step.py``): 96 seeded 56x56 maps (ties, empty
maps, border objects, equal-size components), 14 BAS and 22 ORNet thresholds, GT boxes incl. IoU exactly 0.5;
and 400 seeded GT boxes mapped into the 256/224 frame by each paper's loader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from wsol_lightning.metrics import LegacyBoxAccuracy, legacy_crop_boxes
from wsol_lightning.metrics.legacy import (
    legacy_bas_box,
    legacy_box,
    legacy_hits,
    legacy_iou,
    legacy_largest_component_box,
    legacy_ornet_box,
)
from wsol_lightning.testing import load_fixture

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "parity" / "common" / "legacy.pt"


@pytest.fixture(scope="module")
def fixture() -> dict:
    data = load_fixture(FIXTURE)
    data["maps"] = data["codes"].numpy().astype(np.float32) / np.float32(255)  # as the tool built them
    return data


def test_bas_boxes_iou_and_success_equal_the_official_code(fixture: dict):
    bas = fixture["bas"]
    thresholds = bas["thresholds"].tolist()
    for i, m in enumerate(fixture["maps"]):
        gt = bas["gt"][i].numpy()
        for j, t in enumerate(thresholds):
            box = legacy_bas_box(m, t)
            assert box.tolist() == bas["boxes"][i, j].tolist(), (i, t)
            assert legacy_box(m, t, "bas").tolist() == box.tolist()
            iou = legacy_iou(box, gt, "bas_cvpr")
            assert iou.max() == float(bas["iou_cvpr"][i, j]) == float(bas["iou_ijcv"][i, j]), (i, t)
            assert bool(legacy_hits(iou[0], "bas_cvpr")) == bool(bas["hit_cvpr"][i, j]), (i, t)
            assert bool(legacy_hits(iou[0], "bas")) == bool(bas["hit_cvpr"][i, j])
            assert bool(legacy_hits(iou[0], "bas_ijcv")) == bool(bas["hit_ijcv"][i, j]), (i, t)
    assert int((bas["hit_cvpr"] != bas["hit_ijcv"]).sum()) > 0  # the fixture holds IoU == 0.5 cases


@pytest.mark.parametrize(("legacy", "key"), [("bas", "hit_cvpr"), ("bas_cvpr", "hit_cvpr"), ("bas_ijcv", "hit_ijcv")])
def test_bas_metric_equals_the_official_gt_known(fixture: dict, legacy: str, key: str):
    bas, maps = fixture["bas"], torch.from_numpy(fixture["maps"])
    for j in (3, 8, 12):  # 0.15 (CUB), 0.5 (ILSVRC) and a threshold equal to a map level
        metric = LegacyBoxAccuracy(threshold=float(bas["thresholds"][j]), legacy=legacy)
        metric.update(maps, [g.numpy() for g in bas["gt"]])
        expected = 100.0 * float(bas[key][:, j].double().mean())
        assert float(metric.compute()["gt_known_loc"]) == pytest.approx(expected, abs=1e-9)


def test_the_tight_rule_is_not_bas(fixture: dict):
    """The library's earlier legacy box is one pixel smaller than BAS's and flips IoU > 0.5 outcomes."""
    bas = fixture["bas"]
    flips = 0
    for i, m in enumerate(fixture["maps"]):
        for j, t in enumerate(bas["thresholds"].tolist()):
            tight = legacy_largest_component_box(m, t)
            iou = legacy_iou(tight, bas["gt"][i].numpy(), "tight")
            flips += int(bool(legacy_hits(iou[0], "tight")) != bool(bas["hit_cvpr"][i, j]))
    assert flips > 0


def test_ornet_boxes_iou_and_success_equal_the_official_code(fixture: dict):
    ornet = fixture["ornet"]
    for i, m in enumerate(fixture["maps"].astype(np.float64)):
        gt = ornet["gt"][i].numpy()
        for j, t in enumerate(ornet["thresholds"].tolist()):
            box = legacy_ornet_box(m, t)
            assert box.tolist() == ornet["boxes"][i, j].tolist(), (i, t)
            assert legacy_box(m, t, "ornet").tolist() == box.tolist()
            iou = legacy_iou(box, gt, "ornet")[0]
            assert iou.dtype == np.float32
            np.testing.assert_array_equal(iou, ornet["iou"][i, j].numpy(), err_msg=f"map {i} threshold {t}")
            hits = legacy_hits(iou[:, None], "ornet")
            assert hits.tolist() == ornet["hit"][i, j].tolist(), (i, t)
    assert bool(ornet["iou"].isnan().any()) and bool((ornet["iou"] == 0.5).any())


def test_ornet_metric_equals_the_official_gt_known(fixture: dict):
    ornet = fixture["ornet"]
    maps = torch.from_numpy(fixture["maps"].astype(np.float64))
    for j in (0, 9, 19):
        metric = LegacyBoxAccuracy(threshold=float(ornet["thresholds"][j]), legacy="ornet")
        metric.update(maps, [g[:1].numpy() for g in ornet["gt"]])  # the official loop has one GT box per image
        expected = 100.0 * float(ornet["hit"][:, j, 0].double().mean())
        assert float(metric.compute()["gt_known_loc"]) == pytest.approx(expected, abs=1e-9)


def test_unknown_protocol_is_named():
    with pytest.raises(ValueError, match="legacy must be one of"):
        LegacyBoxAccuracy(threshold=0.5, legacy="cam")


@pytest.mark.parametrize("legacy", ["bas_cvpr", "bas_ijcv", "ornet"])
def test_gt_frames_equal_the_official_loaders(fixture: dict, legacy: str):
    """400 seeded boxes (a quarter in the border the crop removes) mapped as each paper's loader maps them."""
    frames = fixture["frames"]
    expected = frames[legacy].numpy()
    ours = np.concatenate([legacy_crop_boxes(b[None], tuple(s), legacy=legacy)
                           for b, s in zip(frames["boxes"].numpy(), frames["sizes"].numpy())])
    assert ours.dtype == expected.dtype
    np.testing.assert_array_equal(ours, expected)
    generic = {"bas_cvpr": "float", "bas_ijcv": "int", "ornet": "none"}[legacy]  # the earlier approximations
    approx = np.concatenate([legacy_crop_boxes(b[None], tuple(s), clip=generic)
                             for b, s in zip(frames["boxes"].numpy(), frames["sizes"].numpy())])
    assert (approx != expected).any()
