"""MaxBoxAcc / PxAP API: keys, operating threshold, top-1/top-5 counters, curves, state, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsol_lightning.metrics import MaxBoxAcc, PxAP


def blob_maps() -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Three 10x10 maps: a square blob whose box depends on the threshold."""
    maps = torch.zeros(3, 10, 10, dtype=torch.float64)
    maps[:, 2:8, 2:8] = 0.5
    maps[:, 4:6, 4:6] = 1.0
    boxes = [
        torch.tensor([[2, 2, 8, 8]]),
        torch.tensor([[4, 4, 6, 6]]),
        torch.tensor([[0, 0, 9, 9], [2, 2, 8, 8]]),
    ]
    return maps, boxes


def test_compute_keys_and_hand_values() -> None:
    maps, boxes = blob_maps()
    metric = MaxBoxAcc(cam_curve_interval=0.01)
    metric.update(
        maps,
        boxes,
        top1_correct=torch.tensor([True, False, True]),
        top5_correct=torch.tensor([True, True, True]),
    )
    out = metric.compute()
    assert set(out) == {"maxboxacc@30", "maxboxacc@50", "maxboxacc@70", "maxboxacc_v2", "best_threshold"}
    # t < 0.5 (level < 127): box (2,2,8,8) -> images 0 and 2 hit; t >= 0.5: box (4,4,6,6) -> image 1 hits.
    assert float(out["maxboxacc@50"]) == pytest.approx(200 / 3)
    assert float(out["maxboxacc_v2"]) == pytest.approx(200 / 3)
    assert float(out["best_threshold"]) == 0.0  # ties -> smallest threshold
    low = metric.accuracy_at(0.2)
    assert float(low["gt_known_loc"]) == pytest.approx(200 / 3)
    assert float(low["top1_loc"]) == pytest.approx(200 / 3) and float(low["top5_loc"]) == pytest.approx(
        200 / 3
    )
    high = metric.accuracy_at(0.6)
    assert float(high["gt_known_loc"]) == pytest.approx(100 / 3) and float(high["top1_loc"]) == 0.0


def test_best_threshold_and_accuracy_at_grid_lookup() -> None:
    metric = MaxBoxAcc(iou_thresholds=(50,), cam_curve_interval=0.001, multi_contour=False)
    maps, boxes = blob_maps()
    metric.update(maps[1:2], boxes[1:2])
    best = metric.compute()["best_threshold"]
    # 0.5 quantises to 127; the inner square alone is on from level 127 = int(0.499 * 255).
    assert best.dtype == torch.float64 and float(best) == metric.thresholds[499]
    index = int(np.argmax(metric.gt_known_hits[0].numpy()))
    for value in (float(best), float(np.float32(best)), float(best) + 0.0004):
        assert metric.threshold_index(value) == index
    assert metric.threshold_index(0.29) == 290 and metric.threshold_index(0.9999) == 999
    with pytest.raises(ValueError):
        metric.accuracy_at(0.5, iou_threshold=70)


def test_curves_and_top_flags_optional() -> None:
    maps, boxes = blob_maps()
    metric = MaxBoxAcc(cam_curve_interval=0.01)
    metric.update(maps, boxes)
    curves = metric.curves()
    assert curves["thresholds"].shape == (100,) and curves["box_acc@50"].shape == (100,)
    assert float(curves["box_acc@50"].max()) == float(metric.compute()["maxboxacc@50"])
    assert torch.isnan(curves["top1_loc@50"]).all()
    assert torch.isnan(metric.accuracy_at(0.3)["top5_loc"])


def test_state_size_does_not_grow() -> None:
    metric = MaxBoxAcc(cam_curve_interval=0.01)
    maps, boxes = blob_maps()

    def state_numel() -> int:
        return sum(getattr(metric, name).numel() for name in metric._defaults)

    metric.update(maps, boxes)
    first = state_numel()
    for _ in range(5):
        metric.update(maps, boxes, top1_correct=torch.ones(3, dtype=torch.bool))
    assert state_numel() == first == 3 * 3 * 100 + 3
    assert all(isinstance(getattr(metric, n), torch.Tensor) for n in metric._defaults)
    assert int(metric.num_images) == 18
    metric.reset()
    assert int(metric.num_images) == 0 and int(metric.gt_known_hits.sum()) == 0


@pytest.mark.parametrize(
    ("maps", "boxes", "message"),
    [
        (torch.full((2, 4, 4), float("nan")), [torch.tensor([[0, 0, 1, 1]])] * 2, r"cams\[0\] contains NaN"),
        (
            torch.cat([torch.zeros(1, 4, 4), torch.full((1, 4, 4), float("inf"))]),
            [torch.tensor([[0, 0, 1, 1]])] * 2,
            r"cams\[1\] contains NaN or infinite",
        ),
        (
            torch.cat([torch.zeros(1, 4, 4), torch.full((1, 4, 4), 1.5)]),
            [torch.tensor([[0, 0, 1, 1]])] * 2,
            r"cams\[1\] has values outside \[0, 1\]",
        ),
        (
            torch.zeros(2, 4, 4),
            [torch.tensor([[0, 0, 1, 1]]), torch.tensor([[2, 0, 1, 1]])],
            r"boxes\[1\].*x1 >= x0",
        ),
        (
            torch.zeros(2, 4, 4),
            [torch.tensor([[-1, 0, 1, 1]]), torch.tensor([[0, 0, 1, 1]])],
            r"boxes\[0\].*negative",
        ),
        (
            torch.zeros(2, 4, 4),
            [torch.tensor([[0, 0, 1, 1]]), torch.zeros(0, 4, dtype=torch.long)],
            r"boxes\[1\] is empty",
        ),
        (torch.zeros(2, 4, 4), [torch.tensor([[0, 0, 1, 1]])], "one .* per map"),
        (torch.zeros(4, 4), [torch.tensor([[0, 0, 1, 1]])], r"shape \(B, H, W\)"),
    ],
)
def test_maxboxacc_rejects_bad_input(maps: torch.Tensor, boxes: list[torch.Tensor], message: str) -> None:
    metric = MaxBoxAcc(cam_curve_interval=0.01)
    with pytest.raises(ValueError, match=message):
        metric.update(maps, boxes)
    assert int(metric.num_images) == 0


def test_pxap_metric_curve_and_bad_masks() -> None:
    maps = torch.tensor([[[0.9, 0.4], [0.6, 0.1]]], dtype=torch.float64)
    masks = torch.tensor([[[1, 1], [0, 0]]], dtype=torch.uint8)
    metric = PxAP(cam_curve_interval=0.5)
    metric.update(maps, masks)
    out = metric.compute()
    assert float(out["pxap"]) == pytest.approx(50.0) and float(out["piou"]) == 50.0
    curve = metric.curve()
    assert curve["thresholds"].tolist() == [2.0, 1.0, 0.5, 0.0]
    assert curve["recall"].tolist() == [0.0, 0.0, 0.5, 1.0] and curve["precision"][2:].tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match=r"masks\[1\] has shape \(3, 3\)"):
        metric.update(
            torch.zeros(2, 2, 2), [torch.zeros(2, 2, dtype=torch.uint8), torch.zeros(3, 3, dtype=torch.uint8)]
        )
    with pytest.raises(ValueError, match=r"masks\[0\] must hold 0"):
        metric.update(torch.zeros(1, 2, 2), torch.full((1, 2, 2), 7, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"cams\[0\] contains NaN"):
        metric.update(torch.full((1, 2, 2), float("nan")), masks)
    empty = PxAP()
    empty.update(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="no object"):
        empty.compute()
