"""Baselines and warnings beside the val/test tables: inverted maps, degenerate thresholds, chance classifiers."""

from __future__ import annotations

from pathlib import Path

import cv2
import lightning as L
import pytest
import torch
from torch import Tensor, nn

from wsol_lightning.data import SyntheticDataModule
from wsol_lightning.methods.base import WSOLModule
from wsol_lightning.methods.baselines import centre_baseline_scores, centre_gaussian_maps
from wsol_lightning.metrics import MaxBoxAcc, PxAP
from wsol_lightning.types import WSOLBatch

INTERVAL = 0.01


def good_maps(mask: Tensor) -> Tensor:
    """A good map: the object mask blurred (peaks on the object), max 1."""
    blurred = torch.stack([torch.from_numpy(cv2.GaussianBlur((m == 1).double().numpy(), (0, 0), 2)) for m in mask])
    return blurred / blurred.amax(dim=(1, 2), keepdim=True)


class OracleMaps(WSOLModule):
    """A module whose maps and logits are made from the batch's labels: the test double of a trained method."""

    def __init__(self, kind: str = "good", classifier: str = "good", **kwargs) -> None:
        super().__init__(num_classes=4, cam_curve_interval=INTERVAL, **kwargs)
        self.kind, self.classifier = kind, classifier
        self.unused = nn.Linear(1, 1)

    def evaluation_maps(self, batch: WSOLBatch) -> tuple[Tensor, Tensor]:
        good = good_maps(batch["mask"])
        maps = {"good": good, "inverted": 1.0 - good, "whole": torch.ones_like(good)}[self.kind]
        labels = batch["label"] if self.classifier == "good" else torch.zeros_like(batch["label"])
        return torch.nn.functional.one_hot(labels, 4).float(), maps


@pytest.fixture(scope="module")
def data(synthetic_cache: Path) -> SyntheticDataModule:
    return SyntheticDataModule(data_dir=synthetic_cache, images_per_class=24, val_per_class=4, batch_size=8)


def evaluate(module: OracleMaps, data: SyntheticDataModule, stage: str = "validate") -> dict[str, float]:
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    getattr(trainer, stage)(module, datamodule=data)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def test_inverted_map_warns_and_scores_below_chance_pxap(data, capsys) -> None:
    metrics = evaluate(OracleMaps("inverted"), data)
    assert metrics["val/pxap"] < metrics["val/pxap_chance"]
    assert metrics["val/warn_inverted_map"] == 1.0
    assert metrics["val/maxboxacc_v2_outer"] < metrics["val/maxboxacc_v2"]  # V2 scores through the hole
    out = capsys.readouterr().out
    assert "WSOL sanity warnings (val" in out and "inverted maps?" in out
    assert out.rindex("inverted maps?") > out.rindex("val/pxap_chance")  # after the table, not inside it


def test_good_map_and_classifier_raise_no_warning(data, capsys) -> None:
    metrics = evaluate(OracleMaps("good"), data)
    assert metrics["val/pxap"] > metrics["val/baseline_centre_pxap"] > metrics["val/pxap_chance"]
    assert metrics["val/maxboxacc_v2"] > metrics["val/baseline_centre_maxboxacc_v2"]
    assert metrics["val/maxboxacc_v2_outer"] == metrics["val/maxboxacc_v2"]  # a blob has no hole
    for flag in ("inverted_map", "degenerate_threshold", "chance_classifier"):
        assert metrics[f"val/warn_{flag}"] == 0.0, flag
    assert metrics["val/border_mass_ratio"] < 1.0
    assert "WSOL sanity warnings" not in capsys.readouterr().out


def test_whole_image_map_at_threshold_zero_is_degenerate(data, capsys) -> None:
    metrics = evaluate(OracleMaps("whole"), data)
    assert metrics["val/operating_threshold"] == 0.0
    assert metrics["val/warn_degenerate_threshold"] == 1.0
    assert metrics["val/whole_image_span_rate"] == 100.0
    assert metrics["val/maxboxacc_v2"] == pytest.approx(metrics["val/baseline_whole_maxboxacc_v2"])
    assert "degenerate operating threshold 0" in capsys.readouterr().out


def test_chance_classifier_is_flagged(data) -> None:
    metrics = evaluate(OracleMaps("good", classifier="constant"), data)
    assert metrics["val/top1_cls"] == pytest.approx(25.0)
    assert metrics["val/top1_chance_pvalue"] > 0.01
    assert metrics["val/warn_chance_classifier"] == 1.0


def test_baselines_are_the_same_split_and_metric(data) -> None:
    """The logged baselines equal a direct computation on the same split's images with the same metric."""
    for stage, split in (("validate", "val"), ("test", "test")):
        metrics = evaluate(OracleMaps("good"), data, stage)
        centre = centre_baseline_scores(data, split, cam_curve_interval=INTERVAL)
        assert metrics[f"{split}/baseline_centre_maxboxacc_v2"] == pytest.approx(centre["maxboxacc_v2"], abs=1e-4)
        assert metrics[f"{split}/baseline_centre_pxap"] == pytest.approx(centre["pxap"], abs=1e-4)
        whole_box, whole_px = MaxBoxAcc(cam_curve_interval=INTERVAL), PxAP(cam_curve_interval=INTERVAL)
        loader = data.test_dataloader() if split == "test" else data.val_dataloader()
        for batch in loader:
            ones = torch.ones(batch["mask"].shape, dtype=torch.float64)
            whole_box.update(ones, batch["boxes"])
            whole_px.update(ones, batch["mask"])
        assert metrics[f"{split}/baseline_whole_maxboxacc_v2"] == pytest.approx(
            float(whole_box.compute()["maxboxacc_v2"]), abs=1e-4)
        assert metrics[f"{split}/baseline_whole_pxap"] == pytest.approx(float(whole_px.compute()["pxap"]), abs=1e-4)
        assert metrics[f"{split}/pxap_chance"] == metrics[f"{split}/baseline_whole_pxap"]


def test_v1_tables_carry_v1_baselines_and_no_outer_key(data) -> None:
    """With ``multi_contour=False`` the baselines use V1 too, and the outer key (a V2 variant) is absent."""
    metrics = evaluate(OracleMaps("good", multi_contour=False, iou_thresholds=(50,)), data)
    assert "val/maxboxacc_v2_outer" not in metrics
    direct = MaxBoxAcc(iou_thresholds=(50,), cam_curve_interval=INTERVAL, multi_contour=False)
    for batch in data.val_dataloader():
        direct.update(centre_gaussian_maps(*batch["mask"].shape), batch["boxes"])
    expected = float(direct.compute()["maxboxacc_v2"])
    assert expected > 0 and metrics["val/baseline_centre_maxboxacc_v2"] == pytest.approx(expected)
    assert metrics["val/warn_inverted_map"] == 0.0
