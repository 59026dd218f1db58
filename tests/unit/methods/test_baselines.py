"""The centre-Gaussian baseline: peak at the centre, centred boxes, its score on a datamodule."""

import torch

from wsol_lightning.data import SyntheticDataModule
from wsol_lightning.methods.baselines import centre_baseline_scores, centre_gaussian_maps
from wsol_lightning.metrics import MaxBoxAcc


def test_maps_peak_at_the_centre_and_are_normalised():
    maps = centre_gaussian_maps(2, 9, 13)
    assert maps.shape == (2, 9, 13) and maps.dtype == torch.float64
    assert float(maps.max()) == 1.0 and float(maps.min()) == 0.0
    assert maps[0, 4, 6] == 1.0
    assert torch.equal(maps[0], maps[0].flip(0)) and torch.equal(maps[0], maps[0].flip(1))


def test_centred_object_is_found_off_centre_object_is_not():
    metric = MaxBoxAcc(iou_thresholds=(50,), cam_curve_interval=0.01)
    metric.update(centre_gaussian_maps(1, 32, 32), [torch.tensor([[10, 10, 21, 21]])])
    assert float(metric.compute()["maxboxacc_v2"]) == 100.0
    metric = MaxBoxAcc(iou_thresholds=(50,), cam_curve_interval=0.01)
    metric.update(centre_gaussian_maps(1, 32, 32), [torch.tensor([[0, 0, 7, 7]])])
    assert float(metric.compute()["maxboxacc_v2"]) == 0.0


def test_scores_on_a_datamodule(tmp_path):
    data = SyntheticDataModule(data_dir=tmp_path, images_per_class=12, val_per_class=2, batch_size=8)
    scores = centre_baseline_scores(data)
    assert 0.0 < scores["maxboxacc_v2"] < 60.0
    assert {"maxboxacc@30", "maxboxacc@50", "maxboxacc@70", "pxap", "piou"} <= set(scores)
