"""Guards: a non-finite loss stops the run naming the term and the step; gradient clipping is a Trainer
option that really clips; a checkpoint or weights file that does not match the model names the keys;
``bf16-mixed`` trains on CPU.

(Unknown config keys and wrongly typed values are covered in ``test_configs.py``; ``weights_only=True``
loading in ``tests/unit/backbones``.)
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import timm
import torch
from lightning.pytorch.callbacks import Callback

from wsol_lightning.backbones import build_trunk
from wsol_lightning.checkpoints import CheckpointError
from wsol_lightning.cli import WSOLCLI
from wsol_lightning.data import SyntheticDataModule
from wsol_lightning.methods import CAM, NonFiniteLossError
from wsol_lightning.types import WSOLBatch


def cli_args(cache: Path, root: Path, *extra: str, backbone: str = "test_resnet") -> list[str]:
    return [
        "--model", "CAM", "--model.backbone", backbone, "--model.cam_curve_interval", "0.01",
        "--data", "SyntheticDataModule", "--data.data_dir", str(cache), "--data.num_classes", "3",
        "--data.images_per_class", "10", "--data.val_per_class", "2", "--data.image_size", "32",
        "--data.batch_size", "4", "--trainer.accelerator", "cpu", "--trainer.devices", "1",
        "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--trainer.logger", "false", *extra,
    ]


def small_data(cache: Path) -> SyntheticDataModule:
    return SyntheticDataModule(data_dir=cache, num_classes=3, images_per_class=10, val_per_class=2,
                               image_size=32, batch_size=4)


def quiet_trainer(root: Path, **kwargs: Any) -> L.Trainer:
    kwargs = {"accelerator": "cpu", "devices": 1, "logger": False, "enable_checkpointing": False,
              "enable_progress_bar": False, "enable_model_summary": False, "default_root_dir": root, **kwargs}
    return L.Trainer(**kwargs)


# ------------------------------------------------------------------------------------ non-finite loss
def test_absurd_learning_rate_stops_naming_the_term_and_step(tmp_path: Path, synthetic_cache: Path):
    with pytest.raises(NonFiniteLossError) as info:
        WSOLCLI(args=["fit", *cli_args(synthetic_cache, tmp_path, "--model.lr", "1e30",
                                       "--model.weight_decay", "0", "--trainer.max_epochs", "3")])
    message = str(info.value)
    assert "loss term 'loss_cls'" in message
    step = int(re.search(r"at global step (\d+)", message).group(1))
    assert step >= 1  # the first step is finite; the absurd update breaks the next ones
    assert "gradient_clip_val" in message  # says what to try


class CAMWithExtraTerm(CAM):
    """CAM plus a named extra term that becomes infinite at a chosen global step."""

    def __init__(self, bad_step: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def training_losses(self, batch: WSOLBatch) -> dict[str, torch.Tensor]:
        losses = super().training_losses(batch)
        bad = self.global_step == self.hparams.bad_step
        extra = losses["loss_cls"].new_tensor(float("inf") if bad else 0.0)
        losses["loss_extra"] = extra
        losses["loss"] = losses["loss"] + extra
        return losses


def test_infinite_term_is_named_with_its_step(tmp_path: Path, synthetic_cache: Path):
    model = CAMWithExtraTerm(bad_step=2, backbone="test_resnet", num_classes=3, cam_curve_interval=0.01)
    trainer = quiet_trainer(tmp_path, max_epochs=5, limit_val_batches=0)
    with pytest.raises(NonFiniteLossError, match=r"loss term 'loss_extra' is \[?inf\]? at global step 2 "):
        trainer.fit(model, datamodule=small_data(synthetic_cache))
    assert trainer.global_step == 2  # stopped before the optimizer applied the bad step


# ------------------------------------------------------------------------------------ gradient clipping
class GradNormProbe(Callback):
    """Records the total gradient norm the optimizer stepped with (grads stay until the next zero_grad)."""

    def __init__(self) -> None:
        self.norms: list[float] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))


@pytest.mark.parametrize("clip", [None, 1e-3])
def test_gradient_clip_val_parses_and_clips(clip: float | None, tmp_path: Path, synthetic_cache: Path):
    probe = GradNormProbe()
    extra = ["--trainer.max_steps", "2", "--trainer.limit_val_batches", "0", "--test_after_fit", "false",
             "--trainer.enable_checkpointing", "false"]
    if clip is not None:
        extra += ["--trainer.gradient_clip_val", str(clip), "--trainer.gradient_clip_algorithm", "norm"]
    cli = WSOLCLI(args=["fit", *cli_args(synthetic_cache, tmp_path, *extra)],
                  trainer_defaults={"callbacks": [probe]})
    assert cli.trainer.gradient_clip_val == clip
    assert len(probe.norms) == 2
    if clip is None:
        assert min(probe.norms) > 1e-2  # so the clipped case below is a real test
    else:
        assert max(probe.norms) <= clip * (1 + 1e-4)


# ------------------------------------------------------------------------------------ mismatched weights
@pytest.fixture(scope="module")
def cam_checkpoint(tmp_path_factory: pytest.TempPathFactory, synthetic_cache: Path) -> Path:
    """A CAM (resnet10t, 3 classes) checkpoint written by ``wsol fit`` (ModelCheckpoint)."""
    root = tmp_path_factory.mktemp("cam_ckpt")
    WSOLCLI(args=["fit", *cli_args(synthetic_cache, root, "--trainer.max_steps", "1", "--test_after_fit",
                                   "false", "--trainer.limit_val_batches", "1", backbone="resnet10t")])
    return next(root.rglob("*.ckpt"))


def test_checkpoint_of_another_backbone_names_the_keys(cam_checkpoint: Path):
    with pytest.raises(RuntimeError) as info:
        CAM.load_from_checkpoint(cam_checkpoint, backbone="test_resnet")
    message = str(info.value)
    assert "Error(s) in loading state_dict for CAM" in message
    assert "Missing key(s)" in message or "Unexpected key(s)" in message
    assert re.search(r"size mismatch for net\.trunk\.\S+: copying a param with shape", message)
    assert CAM.load_from_checkpoint(cam_checkpoint).hparams.backbone == "resnet10t"  # the matching case loads


def test_checkpoint_with_other_num_classes_names_the_classifier(cam_checkpoint: Path):
    with pytest.raises(RuntimeError, match=r"size mismatch for net\.classifier\.weight"):
        CAM.load_from_checkpoint(cam_checkpoint, num_classes=5)


def test_cli_refuses_another_backbone_and_rebuilds_the_checkpoints_model(cam_checkpoint: Path, tmp_path: Path,
                                                                         synthetic_cache: Path):
    """``wsol test --ckpt_path`` with a different ``--model.backbone`` is refused naming the key (it is not
    silently replaced by the checkpoint's); with the checkpoint's backbone the model is rebuilt and tested."""
    with pytest.raises(CheckpointError, match=r"model\.init_args\.backbone: the checkpoint has 'resnet10t', the "
                                              r"config or command line gives 'test_resnet'"):
        WSOLCLI(args=["test", *cli_args(synthetic_cache, tmp_path, "--ckpt_path", str(cam_checkpoint),
                                        backbone="test_resnet")])
    cli = WSOLCLI(args=["test", *cli_args(synthetic_cache, tmp_path, "--ckpt_path", str(cam_checkpoint),
                                          backbone="resnet10t")])
    assert cli.model.hparams.backbone == "resnet10t"
    assert "test/maxboxacc_v2" in cli.trainer.callback_metrics


def test_weights_file_of_another_backbone_warns_naming_the_keys(tmp_path: Path):
    path = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), path)
    with pytest.warns(UserWarning, match=r"resnet18\.pth does not fully match the model.*conv1\.0\.weight"):
        build_trunk("resnet10t", pretrained=str(path))
    matching = tmp_path / "resnet10t.pth"
    torch.save(timm.create_model("resnet10t", pretrained=False).state_dict(), matching)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        build_trunk("resnet10t", pretrained=str(matching))  # a matching file loads silently


# ------------------------------------------------------------------------------------ mixed precision
class DtypeProbe(Callback):
    """Records the trunk's output dtype and the loss of each training step."""

    def __init__(self) -> None:
        self.dtypes: list[torch.dtype] = []
        self.losses: list[float] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        conv = next(m for m in pl_module.modules() if isinstance(m, torch.nn.Conv2d))
        conv.register_forward_hook(lambda module, inputs, output: self.dtypes.append(output.dtype))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           *args: Any) -> None:
        self.losses.append(float(outputs["loss"]))


def test_bf16_mixed_trains_a_step_on_cpu(tmp_path: Path, synthetic_cache: Path):
    probe = DtypeProbe()
    cli = WSOLCLI(args=["fit", *cli_args(synthetic_cache, tmp_path, "--trainer.precision", "bf16-mixed",
                                         "--trainer.fast_dev_run", "true")],
                  trainer_defaults={"callbacks": [probe]})
    assert cli.trainer.precision == "bf16-mixed"
    assert cli.trainer.global_step == 1
    assert probe.dtypes[0] == torch.bfloat16  # the convolutions really ran in bf16
    assert len(probe.losses) == 1 and math.isfinite(probe.losses[0])
    assert "test/maxboxacc_v2" in cli.trainer.callback_metrics  # evaluation under autocast works too
