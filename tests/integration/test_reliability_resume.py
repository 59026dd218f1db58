"""Resume and determinism: a run SIGKILLed mid-epoch resumes with ``--ckpt_path last`` and ends exactly
where an uninterrupted run ends; the same seed gives the same metrics and weights twice. With the CLI's
defaults (no checkpoint callback configured) a run keeps ``runs/<name>/checkpoints/last.ckpt``: after a
SIGKILL it continues from the last epoch end, after a SIGINT (Ctrl+C) from the step where it stopped, with the
same counters and optimizer state, and ends where an uninterrupted run ends.

The killed run is a subprocess (the runner of ``test_ddp_methods.py``) that pauses right after a
step-checkpoint so the kill lands at a known point; the other runs are in-process, on one thread like
the subprocess, with ``--trainer.deterministic true``.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from test_ddp_methods import SMALL_DATA, model_args, start_runner

from wsol_lightning.cli import WSOLCLI

MAX_EPOCHS = 2
STEPS_PER_EPOCH = 4  # 15 train images (3 classes x (7 - 2 val)) in batches of 4
KILL_AT_STEP = 7  # mid-epoch 1; the last checkpoint before it is step 6 (every 2 steps)


def run_args(cache: Path, root: Path, *extra: str) -> list[str]:
    return [
        "fit", *model_args("CAM"), "--model.cam_curve_interval", "0.01", "--model.lr_scheduler", "cosine",
        *SMALL_DATA, "--data.data_dir", str(cache), "--seed_everything", "7",
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.deterministic", "true",
        "--trainer.max_epochs", str(MAX_EPOCHS), "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--trainer.logger", "false",
        "--trainer.default_root_dir", str(root),
        "--trainer.callbacks+=ModelCheckpoint", f"--trainer.callbacks.dirpath={root / 'ckpt'}",
        "--trainer.callbacks.every_n_train_steps=2", "--trainer.callbacks.save_top_k=-1",
        "--trainer.callbacks.save_last=true", *extra,
    ]


@contextmanager
def one_thread() -> Iterator[None]:
    """Run like the subprocesses (OMP_NUM_THREADS=1) so float arithmetic matches bit for bit."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_in_process(args: list[str]) -> dict[str, Any]:
    with one_thread():
        cli = WSOLCLI(args=args)
    return {
        "metrics": {k: float(v) for k, v in cli.trainer.callback_metrics.items()},
        "state": {k: v.detach().clone() for k, v in cli.model.state_dict().items()},
        "global_step": cli.trainer.global_step,
    }


def assert_same_run(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["global_step"] == b["global_step"] == MAX_EPOCHS * STEPS_PER_EPOCH
    assert a["state"].keys() == b["state"].keys()
    differing = [k for k in a["state"] if not torch.equal(a["state"][k], b["state"][k])
                 and not (a["state"][k].isnan().all() and b["state"][k].isnan().all())]  # unset thresholds
    assert not differing, f"weights differ: {differing[:5]}"
    assert a["metrics"].keys() == b["metrics"].keys()
    assert {"test/maxboxacc_v2", "test/pxap", "test/top1_cls"} <= set(a["metrics"])
    assert a["metrics"] == b["metrics"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, synthetic_cache: Path) -> dict[str, Any]:
    return fit_in_process(run_args(synthetic_cache, tmp_path_factory.mktemp("uninterrupted")))


def test_same_seed_gives_the_same_run_twice(uninterrupted: dict[str, Any], tmp_path: Path,
                                            synthetic_cache: Path):
    again = fit_in_process(run_args(synthetic_cache, tmp_path))
    assert_same_run(uninterrupted, again)


def test_killed_mid_epoch_run_resumes_to_the_same_end(uninterrupted: dict[str, Any], tmp_path: Path,
                                                      synthetic_cache: Path):
    proc = start_runner(tmp_path / "killed.json", run_args(synthetic_cache, tmp_path),
                        WSOL_RUNNER_PAUSE_AT_STEP=str(KILL_AT_STEP))
    marker = tmp_path / "paused"
    deadline = time.monotonic() + 240
    try:
        while not marker.exists():
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "the run never reached the kill point"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)  # no cleanup, no final checkpoint: like a lost node
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    saved = sorted(p.name for p in (tmp_path / "ckpt").glob("*.ckpt"))
    assert "last.ckpt" in saved and not any("step=8" in name for name in saved), saved
    last = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == KILL_AT_STEP - 1 and last["epoch"] == 1  # mid-epoch 1

    resumed = fit_in_process(run_args(synthetic_cache, tmp_path, "--ckpt_path", "last"))
    assert_same_run(uninterrupted, resumed)


# ------------------------------------------------------------------------------------ CLI defaults
def default_args(cache: Path, *extra: str) -> list[str]:
    """``run_args`` without a checkpoint callback or root dir: the run lives in runs/cam_synthetic."""
    return [
        "fit", *model_args("CAM"), "--model.cam_curve_interval", "0.01", "--model.lr_scheduler", "cosine",
        *SMALL_DATA, "--data.data_dir", str(cache), "--seed_everything", "7",
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.deterministic", "true",
        "--trainer.max_epochs", str(MAX_EPOCHS), "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--trainer.logger", "false", *extra,
    ]


class StartProbe(Callback):
    """Records where training (re)starts: counters and the optimizer's state."""

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        optimizer = trainer.optimizers[0]
        self.start = (trainer.global_step, trainer.current_epoch)
        self.momentum = [optimizer.state[p]["momentum_buffer"].clone() for group in optimizer.param_groups
                         for p in group["params"] if "momentum_buffer" in optimizer.state[p]]


def pause_then(signum: int, work: Path, cache: Path, at_step: int) -> int:
    """Run ``default_args`` in a subprocess (cwd ``work``), send ``signum`` at ``at_step``; return the exit code."""
    proc = start_runner(work / "run.json", default_args(cache), WSOL_RUNNER_PAUSE_AT_STEP=str(at_step))
    deadline = time.monotonic() + 240
    try:
        while not (work / "paused").exists():
            assert proc.poll() is None, (work / "run.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "the run never reached the pause"
            time.sleep(0.2)
        proc.send_signal(signum)
        return proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()


def resume_in(work: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], StartProbe]:
    probe = StartProbe()
    monkeypatch.chdir(work)
    with one_thread():
        cli = WSOLCLI(args=default_args(cache, "--ckpt_path", "last"), trainer_defaults={"callbacks": [probe]})
    result = {"metrics": {k: float(v) for k, v in cli.trainer.callback_metrics.items()},
              "state": {k: v.detach().clone() for k, v in cli.model.state_dict().items()},
              "global_step": cli.trainer.global_step}
    return result, probe


def assert_resumed_from(probe: StartProbe, saved: dict[str, Any], step: int, epoch: int) -> None:
    assert probe.start == (step, epoch)
    buffers = [s["momentum_buffer"] for s in saved["optimizer_states"][0]["state"].values()]
    assert len(probe.momentum) == len(buffers) > 0  # the optimizer continued, it did not start empty
    assert all(torch.equal(a, b) for a, b in zip(probe.momentum, buffers, strict=True))


@pytest.mark.slow  # a subprocess run (~20-30 s on 2 shared cores)
def test_default_run_sigkilled_resumes_from_its_last_ckpt(uninterrupted: dict[str, Any], tmp_path: Path,
                                                          synthetic_cache: Path, monkeypatch: pytest.MonkeyPatch):
    code = pause_then(signal.SIGKILL, tmp_path, synthetic_cache, at_step=KILL_AT_STEP)
    assert code == -signal.SIGKILL
    last = tmp_path / "runs" / "cam_synthetic" / "checkpoints" / "last.ckpt"
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]  # only last.ckpt, no temp file
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["global_step"] == STEPS_PER_EPOCH  # the end of epoch 0, the last save before the kill

    resumed, probe = resume_in(tmp_path, synthetic_cache, monkeypatch)
    assert_resumed_from(probe, saved, STEPS_PER_EPOCH, 1)
    assert_same_run(uninterrupted, resumed)


@pytest.mark.slow  # a subprocess run (~20-30 s on 2 shared cores)
def test_default_run_interrupted_by_sigint_saves_the_step_and_resumes(uninterrupted: dict[str, Any],
                                                                      tmp_path: Path, synthetic_cache: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    code = pause_then(signal.SIGINT, tmp_path, synthetic_cache, at_step=KILL_AT_STEP - 1)
    log = (tmp_path / "run.log").read_text()
    assert code == 1, log[-4000:]  # Lightning's exit code after Ctrl+C
    last = tmp_path / "runs" / "cam_synthetic" / "checkpoints" / "last.ckpt"
    assert f"Interrupted at global step {KILL_AT_STEP - 1} (epoch 1): saved {last.resolve()}. Continue the run " \
           "with the same command and --ckpt_path last." in log
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["global_step"] == KILL_AT_STEP - 1  # mid-epoch 1: the step where Ctrl+C arrived

    resumed, probe = resume_in(tmp_path, synthetic_cache, monkeypatch)
    assert_resumed_from(probe, saved, KILL_AT_STEP - 1, 1)
    assert_same_run(uninterrupted, resumed)
