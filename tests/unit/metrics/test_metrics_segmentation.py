"""Seed mIoU: hand-computed confusion and IoU, background threshold sweep."""

import pytest
import torch

from wsol_lightning.metrics import SeedMIoU
from wsol_lightning.metrics.segmentation import iou_per_class, seed_confusion


def test_seed_confusion_by_hand():
    # 1 image, 2 classes, 1x4 pixels; GT: bg, class0, class1, ignored
    maps = torch.tensor([[[[0.1, 0.9, 0.2, 0.9]], [[0.0, 0.3, 0.6, 0.0]]]], dtype=torch.float64)
    semantic = torch.tensor([[[0, 1, 2, 255]]], dtype=torch.uint8)
    confusion = seed_confusion(maps, semantic, torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64))
    # t=0.05: preds 1 (0.1 > 0.05, class0), 1, 2 -> bg pixel wrong
    assert confusion[0].tolist() == [[0, 1, 0], [0, 1, 0], [0, 0, 1]]
    # t=0.5: preds 0, 1, 2 -> all right
    assert confusion[1].tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    # t=0.95: everything background
    assert confusion[2].tolist() == [[1, 0, 0], [1, 0, 0], [1, 0, 0]]


def test_iou_per_class_by_hand():
    confusion = torch.tensor([[3, 1], [2, 4]])
    # label 0: tp 3, row 4, col 5 -> 3 / 6; label 1: tp 4, row 6, col 5 -> 4 / 7
    assert iou_per_class(confusion).tolist() == pytest.approx([3 / 6, 4 / 7])


def test_metric_sweeps_and_reads_at_a_val_threshold():
    metric = SeedMIoU(num_classes=2, bg_thresholds=[0.05, 0.5, 0.95])
    maps = torch.tensor([[[[0.1, 0.9, 0.2, 0.9]], [[0.0, 0.3, 0.6, 0.0]]]], dtype=torch.float64)
    metric.update(maps, torch.tensor([[[0, 1, 2, 255]]], dtype=torch.uint8))
    results = metric.compute()
    assert float(results["miou_best"]) == pytest.approx(100.0)
    assert float(results["best_bg_threshold"]) == pytest.approx(0.5)
    # at 0.05: IoU bg 0/1, class0 1/2, class1 1/1 -> mean 50
    assert float(metric.miou_at(results["miou_curve"], 0.04)) == pytest.approx(50.0)
    state = metric.confusion.numel()
    metric.update(maps, torch.tensor([[[0, 1, 2, 255]]], dtype=torch.uint8))
    assert metric.confusion.numel() == state


def test_bad_labels_are_named():
    metric = SeedMIoU(num_classes=2, bg_thresholds=[0.5])
    with pytest.raises(ValueError, match="label 7"):
        metric.update(torch.zeros(1, 2, 1, 2, dtype=torch.float64), torch.tensor([[[0, 7]]], dtype=torch.uint8))
