"""Every BAS config parses through the CLI and carries the papers' numbers."""

from pathlib import Path

import pytest
import yaml

import wsol_lightning.data
from wsol_lightning.cli import WSOLCLI

CONFIGS = Path(__file__).resolve().parents[4] / "configs"

#: config -> (backbone, variant, alpha, beta, top_k, epochs, batch) from the official code (anchor table)
EXPECTED = {
    "bas_cub.yaml": ("resnet50", "cvpr", 0.5, 1.2, 200, 100, 32),
    "bas_cub_vgg16.yaml": ("vgg16", "cvpr", 0.0, 0.7, 80, 100, 32),
    "bas_cub_inception_v3.yaml": ("inception_v3", "cvpr", 0.5, 1.0, 200, 100, 32),
    "bas_cub_mobilenetv1.yaml": ("mobilenetv1_100", "cvpr", 0.5, 1.5, 200, 100, 32),
    "bas_imagenet.yaml": ("resnet50", "cvpr", 1.0, 2.0, 1, 9, 128),
    "bas_imagenet_vgg16.yaml": ("vgg16", "cvpr", 0.05, 1.0, 1, 9, 128),
    "bas_imagenet_inception_v3.yaml": ("inception_v3", "cvpr", 1.0, 2.5, 1, 9, 128),
    "bas_imagenet_mobilenetv1.yaml": ("mobilenetv1_100", "cvpr", 0.5, 1.5, 1, 9, 128),
    "bas_openimages.yaml": ("resnet50", "ijcv", 0.5, 1.5, 1, 50, 64),
    "bas_voc.yaml": ("resnet50", "ijcv", 0.2, 1.2, 1, 10, 16),
    "bas_synthetic.yaml": ("resnet10t", "cvpr", 0.5, 1.2, 1, 6, 32),
}


def test_every_bas_config_is_listed():
    assert {p.name for p in CONFIGS.glob("bas_*.yaml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bas_config_parses_with_paper_values(name, capsys):
    raw = yaml.safe_load((CONFIGS / name).read_text())
    data_class = raw["data"]["class_path"].rsplit(".", 1)[-1]
    assert hasattr(wsol_lightning.data, data_class), data_class
    with pytest.raises(SystemExit) as exit_info:
        WSOLCLI(args=["fit", "--config", str(CONFIGS / name), "--print_config"])
    assert exit_info.value.code in (0, None)
    config = yaml.safe_load(capsys.readouterr().out)
    model = config["model"]["init_args"]
    assert config["model"]["class_path"] == "wsol_lightning.methods.BAS"
    backbone, variant, alpha, beta, top_k, epochs, batch = EXPECTED[name]
    arch = model["backbone"].split(".", 1)[0]  # the weights tag is checked by tests/integration/test_config_weights.py
    assert (arch, model["variant"], model["alpha"], model["beta"], model["top_k"]) == (
        backbone, variant, alpha, beta, top_k)
    assert config["trainer"]["max_epochs"] == epochs
    assert config["data"]["init_args"]["batch_size"] == batch
    logger = config["trainer"]["logger"]
    if name == "bas_synthetic.yaml":
        assert "Wandb" not in str(logger)
    else:  # paper configs: the papers' optimiser, logged to W&B
        assert logger["class_path"] == "wsol_lightning.loggers.WSOLWandbLogger"
        assert logger["init_args"]["project"] == "wsol" and logger["init_args"]["save_dir"] == "runs"
        assert model["weight_decay"] in (5e-4, 1e-4) and model["optimizer"] == "sgd"
        if name != "bas_voc.yaml":
            assert model["nesterov"] and model["momentum"] == 0.9 and model["lr"] == 1e-3
            assert (model["backbone_bias_lr_mult"], model["head_lr_mult"], model["head_bias_lr_mult"]) == (
                2.0, 10.0, 20.0)
