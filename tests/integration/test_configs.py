"""Every YAML in configs/ parses through the CLI (house rule 5)."""

from pathlib import Path

import pytest

from wsol_lightning.cli import WSOLCLI

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_there_are_configs():
    names = {p.name for p in CONFIGS}
    assert {"cam_synthetic.yaml", "cam_cub.yaml", "cam_imagenet.yaml", "cam_openimages.yaml"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_parses(config: Path, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_info:
        WSOLCLI(args=["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "class_path: wsol_lightning.methods." in printed
    assert "class_path: wsol_lightning.data." in printed


def test_unknown_key_is_rejected_naming_it(capsys: pytest.CaptureFixture[str]):
    config = CONFIGS[0]
    with pytest.raises(SystemExit) as exit_info:
        WSOLCLI(args=["fit", "--config", str(config), "--model.init_args.not_a_real_key", "3", "--print_config"])
    assert exit_info.value.code not in (0, None)
    assert "not_a_real_key" in capsys.readouterr().err


def test_wrong_type_is_rejected_naming_the_key(capsys: pytest.CaptureFixture[str]):
    config = next(p for p in CONFIGS if p.name == "cam_synthetic.yaml")
    with pytest.raises(SystemExit) as exit_info:
        WSOLCLI(args=["fit", "--config", str(config), "--trainer.max_epochs", "many", "--print_config"])
    assert exit_info.value.code not in (0, None)
    assert "max_epochs" in capsys.readouterr().err


PAPER_CONFIGS = [p for p in CONFIGS if "synthetic" not in p.name]


@pytest.mark.parametrize("config", PAPER_CONFIGS, ids=[p.name for p in PAPER_CONFIGS])
def test_paper_configs_log_to_wandb_with_map_overlays(config: Path):
    text = config.read_text()
    assert "class_path: wsol_lightning.loggers.WSOLWandbLogger" in text
    if not config.name.endswith("_evaluator.yaml"):  # ORNet's evaluator phase makes no maps
        assert "class_path: wsol_lightning.callbacks.MapVisualizer" in text
