"""ORNet through the CLI: every config parses; the three synthetic phases chain and the map localises."""

from pathlib import Path

import pytest

from wsol_lightning.cli import WSOLCLI
from wsol_lightning.methods.baselines import centre_baseline_scores
from wsol_lightning.methods.ornet import PhaseCheckpointError

CONFIGS = Path(__file__).resolve().parents[4] / "configs"
ORNET_CONFIGS = sorted(CONFIGS.glob("ornet_*.yaml"))
PHASES = ("evaluator", "coarse", "refine")


def test_every_phase_has_its_configs():
    names = {p.name for p in ORNET_CONFIGS}
    for dataset in ("cub", "imagenet", "synthetic"):
        assert {f"ornet_{dataset}_{phase}.yaml" for phase in PHASES} <= names


@pytest.mark.parametrize("config", ORNET_CONFIGS, ids=[p.name for p in ORNET_CONFIGS])
def test_config_parses(config: Path, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_info:
        WSOLCLI(args=["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "class_path: wsol_lightning.methods.ORNet" in printed
    phase = config.stem.rsplit("_", 1)[1]
    assert f"phase: {phase}" in printed
    if "synthetic" not in config.name:
        assert "WandbLogger" in printed and "project: wsol" in printed


@pytest.mark.slow
def test_synthetic_phases_chain_through_the_cli_and_beat_the_centre_baseline(
        tmp_path: Path, synthetic_cache: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # the configs write and read runs/ornet_synthetic/<phase>.ckpt
    common = ["--data.data_dir", str(synthetic_cache), "--trainer.enable_progress_bar", "false"]
    # refine cannot start before the previous phases exist: a clear error naming the file
    with pytest.raises(PhaseCheckpointError, match="coarse.ckpt"):
        WSOLCLI(args=["fit", "--config", str(CONFIGS / "ornet_synthetic_refine.yaml"), *common])
    results = {}
    for phase in PHASES:
        cli = WSOLCLI(args=["fit", "--config", str(CONFIGS / f"ornet_synthetic_{phase}.yaml"), *common])
        assert (tmp_path / "runs" / "ornet_synthetic" / f"{phase}.ckpt").is_file()
        results[phase] = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
        assert cli.model.phase == phase and bool(cli.model.previous_phase_loaded)
    refine = cli.model
    trainable = {n for n, p in refine.named_parameters() if p.requires_grad}
    assert all(n.startswith(("net.decoder.up2.", "net.decoder.up3.", "net.map_head.")) for n in trainable)
    logged = (Path(cli.trainer.log_dir) / "metrics.csv").read_text()  # this run's log, not the failed attempt's
    header = logged.splitlines()[0].split(",")
    assert {"train/loss_cls", "train/loss_area", "train/loss_entropy", "train/loss"} <= set(header)
    assert results["evaluator"]["test/top1_cls"] > 80
    baseline = centre_baseline_scores(cli.datamodule)["maxboxacc_v2"]
    learned = results["refine"]["test/maxboxacc_v2"]
    print(f"ORNet synthetic: {results}\ncentre baseline MaxBoxAccV2 {baseline:.2f}")
    assert learned > baseline + 10, (learned, baseline)
