"""Framework overhead: a ``wsol fit`` training step against a bare PyTorch loop of the same model, loss,
optimizer and data loader. Target: Lightning step time <= 1.10x the bare step.

Both sides train CAM's network (:class:`~wsol_lightning.methods.cam.model.CAMNet`) with cross-entropy and
the module's SGD parameter groups on the same synthetic train loader (num_workers=0, so data loading is in
both timings). A step's time is the wall time between the ends of consecutive steps: everything the
framework does between two optimizer steps (hooks, logging, NaN guard, scheduler, fetching) is counted.
The two sides alternate ``--repeats`` times; the medians are compared.

    python benchmarks/overhead.py              # resnet18, 64 px, batch 8 (a few minutes on a loaded CPU)
    python benchmarks/overhead.py --backbone resnet50 --size 224 --batch 32 --steps 20   # the real size
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from typing import Any

import torch
from _common import machine, median, set_threads, synthetic_datamodule, verdict
from lightning.pytorch.callbacks import Callback

TARGET = 1.10


class StepClock(Callback):
    """Wall time at the end of every training step."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_batch_end(self, *args: Any) -> None:
        self.ends.append(time.perf_counter())


def lightning_steps(args: argparse.Namespace, images_per_class: int, root: str) -> list[float]:
    from wsol_lightning.cli import WSOLCLI

    clock = StepClock()
    WSOLCLI(args=[
        "fit", "--model", "CAM", "--model.backbone", args.backbone, "--model.lr_scheduler", "none",
        "--data", "SyntheticDataModule", "--data.num_classes", "4", "--data.images_per_class",
        str(images_per_class), "--data.val_per_class", "2", "--data.image_size", str(args.size),
        "--data.batch_size", str(args.batch), "--data.num_workers", "0",
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.max_steps",
        str(args.warmup + args.steps + 1), "--trainer.limit_val_batches", "0",
        "--trainer.num_sanity_val_steps", "0", "--trainer.enable_checkpointing", "false",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.default_root_dir", root, "--test_after_fit", "false",
    ], trainer_defaults={"callbacks": [clock]})
    diffs = [b - a for a, b in zip(clock.ends, clock.ends[1:])]
    return diffs[args.warmup:]


def bare_steps(args: argparse.Namespace, images_per_class: int) -> list[float]:
    from wsol_lightning.methods import CAM
    from wsol_lightning.methods.cam.loss import classification_loss
    from wsol_lightning.methods.optim import build_optimizer

    torch.manual_seed(0)
    data = synthetic_datamodule(4, args.size, args.batch, images_per_class=images_per_class)
    data.prepare_data()
    data.setup("fit")
    module = CAM(backbone=args.backbone, num_classes=4)
    net = module.net.train()
    hp = module.hparams
    optimizer = build_optimizer(module.parameter_groups(), hp.optimizer, hp.lr, hp.momentum, hp.nesterov,
                                hp.weight_decay)
    ends = []
    for i, batch in enumerate(data.train_dataloader()):
        if i > args.warmup + args.steps:
            break
        optimizer.zero_grad(set_to_none=True)
        loss = classification_loss(net(batch["image"])["logits"], batch["label"])
        loss.backward()
        optimizer.step()
        ends.append(time.perf_counter())
    diffs = [b - a for a, b in zip(ends, ends[1:])]
    return diffs[args.warmup:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    set_threads(args.threads)
    # One epoch holds every step (no epoch-end work on either side).
    images_per_class = math.ceil((args.warmup + args.steps + 3) * args.batch / (4 * 0.7)) + 3
    print(machine())
    print(f"CAM {args.backbone}, {args.size}x{args.size}, batch {args.batch}, {args.steps} timed steps x "
          f"{args.repeats} repeats")
    light, bare = [], []
    with tempfile.TemporaryDirectory() as root:
        for r in range(args.repeats):
            bare += bare_steps(args, images_per_class)
            light += lightning_steps(args, images_per_class, root)
            print(f"  repeat {r}: bare {median(bare) * 1e3:.1f} ms/step, wsol fit {median(light) * 1e3:.1f} ms/step")
    ratio = median(light) / median(bare)
    per_step = (median(light) - median(bare)) * 1e3
    print(f"bare PyTorch loop : {median(bare) * 1e3:8.1f} ms/step ({args.batch / median(bare):.1f} img/s)")
    print(f"wsol fit (Lightning): {median(light) * 1e3:6.1f} ms/step ({args.batch / median(light):.1f} img/s)")
    print(f"overhead: {per_step:+.1f} ms/step; ratio {ratio:.3f}x ({verdict(ratio, TARGET)})")


if __name__ == "__main__":
    main()
