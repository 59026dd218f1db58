"""Pure sanity statistics (border mass, whole-image span, chance test) and the reference-map MaxBoxAcc."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wsol_lightning.metrics import MaxBoxAcc, PxAP
from wsol_lightning.metrics import functional as F
from wsol_lightning.metrics.reference import ReferenceMapBoxAcc, ReferenceMapPxAP, whole_image_map
from wsol_lightning.metrics.sanity import (
    EvaluationSanity,
    border_mass,
    border_mass_ratio,
    chance_pvalue,
    whole_image_levels,
)


def test_border_mass_hand_computed() -> None:
    maps = torch.zeros(2, 8, 8, dtype=torch.float64)
    maps[0] = 1.0  # uniform: band share of mass = band share of pixels
    maps[1, 0, 0], maps[1, 4, 4] = 1.0, 0.5  # one corner pixel (border) and one inner pixel
    border, total, border_px, px = border_mass(maps, band=0.125)  # band of ceil(1) row/column
    assert border_px == 64 - 36 and px == 64
    np.testing.assert_allclose(border, [28.0, 1.0])
    np.testing.assert_allclose(total, [64.0, 1.5])
    assert border_mass_ratio(border[0], total[0], border_px, px) == pytest.approx(1.0)
    assert border_mass_ratio(border[1], total[1], border_px, px) == pytest.approx((1 / 1.5) / (28 / 64))
    assert math.isnan(border_mass_ratio(0.0, 0.0, border_px, px))


def test_whole_image_levels_hand_computed() -> None:
    u = np.zeros((3, 10, 10), np.uint8)
    u[0] = 100  # on everywhere up to level 99
    u[1, 0, 0], u[1, 9, 9] = 50, 50  # two opposite corners: their bounding box is the image up to level 49
    u[2, 2:8, 2:8] = 200  # a centred square: 36% of the image, never whole
    assert whole_image_levels(u).tolist() == [99, 49, -1]


def test_chance_pvalue_matches_the_binomial_tail() -> None:
    assert chance_pvalue(2, 2, 2) == pytest.approx(0.25)
    assert chance_pvalue(1, 2, 2) == pytest.approx(0.75)
    # P(X >= 3 | n = 4, p = 1/4) = 4 * (1/4)^3 * (3/4) + (1/4)^4 = 13 / 256.
    assert chance_pvalue(3, 4, 4) == pytest.approx(13 / 256)
    assert chance_pvalue(0, 10, 4) == 1.0 and chance_pvalue(5, 5, 1) == 1.0


def test_evaluation_sanity_counts_and_whole_image_rate() -> None:
    metric = EvaluationSanity(cam_curve_interval=0.1)
    maps = torch.zeros(2, 10, 10, dtype=torch.float64)
    maps[0] = 1.0
    maps[1, 3:7, 3:7] = 1.0
    masks = torch.zeros(2, 10, 10, dtype=torch.uint8)
    masks[:, 3:7, 3:7] = 1
    masks[1, 0, :] = 255
    metric.update(maps, torch.tensor([True, False]), masks)
    out = metric.compute()
    assert float(out["positive_rate"]) == pytest.approx(100 * 32 / 190)
    assert int(out["top1_correct"]) == 1 and int(out["num_classified"]) == 2
    assert metric.whole_image_rate(0.0) == 50.0 and metric.whole_image_rate(0.9) == 50.0


@pytest.mark.parametrize("multi_contour", [True, False])
def test_reference_box_acc_equals_max_box_acc_fed_the_maps(multi_contour: bool) -> None:
    rng = np.random.default_rng(0)
    for size in ((24, 32), (17, 17)):
        ref_map = torch.from_numpy(F.normalize_maps(rng.random((1,) + size)))[0]  # holes and many contours
        boxes = []
        for _ in range(6):
            x0, y0 = int(rng.integers(size[1] - 1)), int(rng.integers(size[0] - 1))
            boxes.append(torch.tensor([[x0, y0, int(rng.integers(x0, size[1])), int(rng.integers(y0, size[0]))]]))
        reference = ReferenceMapBoxAcc(lambda h, w, m=ref_map: m, cam_curve_interval=0.05,
                                       multi_contour=multi_contour)
        direct = MaxBoxAcc(cam_curve_interval=0.05, multi_contour=multi_contour)
        reference.update(boxes, *size)
        direct.update(ref_map.expand(6, *size).clone(), boxes)
        for key, value in direct.compute().items():
            assert float(reference.compute()[key]) == pytest.approx(float(value), nan_ok=True), key


def test_whole_image_reference_is_the_whole_box() -> None:
    metric = ReferenceMapBoxAcc(whole_image_map, iou_thresholds=(50,), cam_curve_interval=0.1)
    metric.update([torch.tensor([[0, 0, 9, 9]]), torch.tensor([[0, 0, 4, 4]])], 10, 10)
    assert float(metric.compute()["maxboxacc_v2"]) == 50.0  # IoU 1 and 25 / 100


def test_reference_pxap_equals_pxap_fed_the_maps() -> None:
    rng = np.random.default_rng(1)
    ref_map = torch.from_numpy(F.normalize_maps(rng.random((1, 12, 15))))[0]
    masks = torch.from_numpy(rng.choice(np.array([0, 1, 255], np.uint8), size=(5, 12, 15), p=[0.6, 0.3, 0.1]))
    reference = ReferenceMapPxAP(lambda h, w: ref_map, cam_curve_interval=0.01)
    direct = PxAP(cam_curve_interval=0.01)
    reference.update(masks, 12, 15)
    direct.update(ref_map.expand(5, 12, 15).clone(), masks)
    assert torch.equal(reference.hist_pos, direct.hist_pos) and torch.equal(reference.hist_neg, direct.hist_neg)
    assert float(reference.compute()["pxap"]) == float(direct.compute()["pxap"])
