"""Distributed runs: every method fits and tests on 2 CPU processes (gloo DDP), and evaluating one
checkpoint on 2 processes gives exactly the single-process metrics (nothing padded is counted).

DDP with the ``ddp`` strategy re-launches the running script for rank 1, so the runs go through this
file as a script (see the ``__main__`` block): it runs :class:`WSOLCLI` with the given arguments, records
which test images each rank saw, and writes the metrics of rank 0 and each rank's indices to JSON.
``test_reliability_resume.py`` uses the same runner.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import pytest

RUNNER = Path(__file__).resolve()
SMALL_DATA = [
    "--data", "SyntheticDataModule", "--data.num_classes", "3", "--data.images_per_class", "10",
    "--data.val_per_class", "2", "--data.image_size", "64", "--data.batch_size", "4",
    "--data.num_workers", "0",
]
# 10 images/class with test_fraction 0.3 -> 3 test images per class: 9 in all, odd on purpose.
NUM_TEST_IMAGES = 9
QUIET_TRAINER = [
    "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false", "--trainer.logger", "false",
]
# Per-method arguments that keep a step small on CPU (paper defaults are sized for ResNet50 at 224).
SMALL_METHOD_ARGS: dict[str, list[str]] = {
    "BAS": ["--model.head_channels", "16"],
    "BCAM": ["--model.num_heads", "4"],
    "ACoL": ["--model.head_width", "32"],
    "SPG": ["--model.attention_size", "32"],
}


def methods() -> list[str]:
    import wsol_lightning.methods as m

    return [name for name in m.__all__ if name not in ("WSOLModule", "NonFiniteLossError")
            and isinstance(getattr(m, name), type) and issubclass(getattr(m, name), L.LightningModule)]


def model_args(method: str, backbone: str = "resnet10t") -> list[str]:
    return ["--model", method, "--model.backbone", backbone, *SMALL_METHOD_ARGS.get(method, [])]


def runner_env() -> dict[str, str]:
    env = dict(os.environ)
    # One thread per process: 2 ranks share 2 cores, and the same thread count in every run keeps the
    # float arithmetic (hence thresholded maps) identical between the 1- and 2-process evaluations.
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="disabled",
               HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("LOCAL_RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


def start_runner(out: Path, cli_args: list[str], **env: str) -> subprocess.Popen:
    """Start ``python test_ddp_methods.py OUT CLI_ARGS...`` (stdout/stderr to ``OUT.log``)."""
    log = open(out.with_suffix(".log"), "w")  # noqa: SIM115 - closed when the process is collected
    return subprocess.Popen([sys.executable, str(RUNNER), str(out), *cli_args], env={**runner_env(), **env},
                            stdout=log, stderr=subprocess.STDOUT, cwd=out.parent)


def run_runner(out: Path, cli_args: list[str], timeout: float = 240, **env: str) -> dict[str, Any]:
    """Run the CLI through the runner; return rank 0's JSON (metrics, global_step, test indices)."""
    proc = start_runner(out, cli_args, **env)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    log = out.with_suffix(".log").read_text()
    assert code == 0, f"runner exited with {code}:\n{log[-6000:]}"
    return json.loads(out.read_text())


def rank_files(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(out.parent.glob(out.name + ".rank*"))]


# ---------------------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def cam_ddp_run(tmp_path_factory: pytest.TempPathFactory, synthetic_cache: Path) -> tuple[Path, dict]:
    """Fit CAM on 2 processes, save a checkpoint, then test that checkpoint on the same 2 processes."""
    work = tmp_path_factory.mktemp("cam_ddp")
    out = work / "ddp.json"
    result = run_runner(out, [
        "fit", *model_args("CAM"), "--model.cam_curve_interval", "0.001", *SMALL_DATA,
        "--data.data_dir", str(synthetic_cache), *QUIET_TRAINER, "--trainer.devices", "2",
        "--trainer.strategy", "ddp", "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(work),
        "--trainer.callbacks+=ModelCheckpoint", f"--trainer.callbacks.dirpath={work / 'ckpt'}",
        "--trainer.callbacks.save_last=true", "--test_after_fit", "false",
    ], WSOL_RUNNER_TEST_CKPT="last")
    return work, result


def test_ddp_fit_then_checkpoint_test_covers_each_test_image_once(cam_ddp_run: tuple[Path, dict[str, Any]]):
    work, result = cam_ddp_run
    assert result["world_size"] == 2
    assert result["global_step"] > 0
    ranks = rank_files(work / "ddp.json")
    assert len(ranks) == 2
    seen = [i for r in ranks for i in r["test_indices"]]
    assert sorted(seen) == list(range(NUM_TEST_IMAGES)), "an image was skipped or counted twice"
    assert {"test/maxboxacc_v2", "test/pxap", "test/gt_known_loc", "test/top1_cls"} <= set(result["metrics"])


def test_two_process_evaluation_equals_single_process_exactly(cam_ddp_run: tuple[Path, dict[str, Any]],
                                                              synthetic_cache: Path):
    work, ddp = cam_ddp_run
    ckpt = work / "ckpt" / "last.ckpt"
    single = run_runner(work / "single.json", [
        "test", *model_args("CAM"), "--model.cam_curve_interval", "0.001", *SMALL_DATA,
        "--data.data_dir", str(synthetic_cache), *QUIET_TRAINER, "--trainer.devices", "1",
        "--trainer.default_root_dir", str(work), "--ckpt_path", str(ckpt),
    ])
    assert single["world_size"] == 1
    assert sorted(single["test_indices"]) == list(range(NUM_TEST_IMAGES))
    test_keys = {k for k in single["metrics"] if k.startswith("test/")}
    assert test_keys == {k for k in ddp["metrics"] if k.startswith("test/")}
    assert len(test_keys) >= 8
    # Non-trivial maps (the comparison means something), and every rate is k/9: no 10th, padded image.
    assert 0 < single["metrics"]["test/maxboxacc@30"] < 100
    for key in ("test/maxboxacc@30", "test/maxboxacc@50", "test/top1_cls"):
        hits = ddp["metrics"][key] * NUM_TEST_IMAGES / 100
        assert abs(hits - round(hits)) < 1e-4, (key, ddp["metrics"][key])
    for key in sorted(test_keys):
        assert ddp["metrics"][key] == single["metrics"][key], (key, ddp["metrics"][key],
                                                               single["metrics"][key])


def test_two_process_run_emits_no_sync_dist_warning(cam_ddp_run: tuple[Path, dict[str, Any]]):
    """Epoch-level metrics are already reduced over processes (torchmetrics) and logged as such: Lightning's
    "use sync_dist=True when logging on epoch level in distributed setting" warning never fires."""
    work, result = cam_ddp_run
    log = (work / "ddp.log").read_text()
    assert result["world_size"] == 2 and "test/maxboxacc_v2" in result["metrics"]  # the run did log them
    warned = [line for line in log.splitlines() if "sync_dist" in line]
    assert not warned, warned[:5]


@pytest.mark.parametrize("method", [m for m in methods() if m != "CAM"])
def test_ddp_fit_and_test_every_method(method: str, tmp_path: Path, synthetic_cache: Path):
    result = run_runner(tmp_path / "run.json", [
        "fit", *model_args(method), "--model.cam_curve_interval", "0.01", *SMALL_DATA,
        "--data.data_dir", str(synthetic_cache), *QUIET_TRAINER, "--trainer.devices", "2",
        "--trainer.strategy", "ddp", "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "1",
        "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_checkpointing", "false",
    ])
    assert result["world_size"] == 2
    assert result["global_step"] > 0
    metrics = result["metrics"]
    assert "test/maxboxacc_v2" in metrics and "test/top1_cls" in metrics
    seen = sorted(i for r in rank_files(tmp_path / "run.json") for i in r["test_indices"])
    assert seen == list(range(NUM_TEST_IMAGES))
    warned = [line for line in (tmp_path / "run.log").read_text().splitlines() if "sync_dist" in line]
    assert not warned, warned[:5]  # every method logs its epoch-level metrics as already reduced


def test_methods_are_discovered():
    assert "CAM" in methods()


# ---------------------------------------------------------------------------------------------- runner
def _main(out: Path, cli_args: list[str]) -> None:
    """Run the CLI; write metrics (rank 0) and per-rank test indices; optionally pause for a kill."""
    import torch
    from lightning.pytorch.callbacks import Callback

    from wsol_lightning.callbacks import LastCheckpoint
    from wsol_lightning.cli import WSOLCLI

    class Recorder(Callback):
        def __init__(self) -> None:
            self.test_indices: list[int] = []
            self.pause_at = int(os.environ.get("WSOL_RUNNER_PAUSE_AT_STEP", "0"))

        def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            self.test_indices = []

        def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                              batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
            self.test_indices += [int(i) for i in batch["index"]]

        def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                               batch: Any, batch_idx: int) -> None:
            if self.pause_at and trainer.global_step == self.pause_at:
                (out.parent / "paused").write_text(str(trainer.global_step))
                # The test SIGKILLs the process here, mid-epoch, or sends SIGINT: LastCheckpoint's handler then
                # ends the pause and the run saves last.ckpt at this step and stops.
                last = [cb for cb in trainer.callbacks if isinstance(cb, LastCheckpoint)]
                deadline = time.monotonic() + 3600
                while time.monotonic() < deadline and not any(cb.interrupt_requested for cb in last):
                    time.sleep(0.05)

    recorder = Recorder()
    cli = WSOLCLI(args=cli_args, trainer_defaults={"callbacks": [recorder]})
    trainer = cli.trainer
    test_ckpt = os.environ.get("WSOL_RUNNER_TEST_CKPT")
    if test_ckpt:
        trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=test_ckpt, verbose=False)
    rank_out = out.parent / f"{out.name}.rank{trainer.global_rank}"
    rank_out.write_text(json.dumps({"test_indices": recorder.test_indices}))
    if trainer.is_global_zero:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) or
                   isinstance(v, float)}
        weights = {k: v.double().sum().item() for k, v in cli.model.state_dict().items()
                   if v.is_floating_point()}
        out.write_text(json.dumps({
            "metrics": metrics, "global_step": trainer.global_step, "world_size": trainer.world_size,
            "test_indices": recorder.test_indices, "weight_sums": weights,
        }))


if __name__ == "__main__":
    _main(Path(sys.argv[1]).resolve(), sys.argv[2:])
