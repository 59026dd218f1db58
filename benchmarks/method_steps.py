"""Each method's training step over CAM's, on the same backbone and the same batch.

A step is ``module.training_losses(batch)["loss"]`` + backward + the module's own SGD step, in train mode
(what ``training_step`` does minus logging). Methods are those exported by ``wsol_lightning.methods``,
each with its paper defaults (e.g. BAS's 1024-channel head, B-CAM's 100 heads); ORNet is timed in each of
its three training phases. Methods alternate step by step so machine load hits them alike.

    python benchmarks/method_steps.py                                     # resnet18, 96 px, batch 8
    python benchmarks/method_steps.py --backbone resnet50 --size 224 --batch 8 --steps 3   # the real size
"""

from __future__ import annotations

import argparse
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
from _common import machine, median, set_threads, synthetic_batch


def variants(backbone: str) -> dict[str, tuple[str, dict[str, Any]]]:
    import wsol_lightning.methods as methods

    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for name in methods.__all__:
        cls = getattr(methods, name)
        if name in ("WSOLModule", "NonFiniteLossError") or not isinstance(cls, type):
            continue
        if name == "ORNet":
            for phase in ("coarse", "evaluator", "refine"):
                kwargs: dict[str, Any] = {"phase": phase, "evaluator_backbone": backbone}
                if phase == "refine":  # the phase checkpoints load in setup(), which a bare step never calls
                    kwargs.update(init_from="unused", evaluator_from="unused")
                found[f"ORNet[{phase}]"] = (name, kwargs)
        else:
            found[name] = (name, {})
    return found


def make_step(cls_name: str, kwargs: dict[str, Any], backbone: str, num_classes: int,
              batch: dict[str, Any]) -> Callable[[], None]:
    import wsol_lightning.methods as methods
    from wsol_lightning.methods.optim import build_optimizer

    torch.manual_seed(0)
    module = getattr(methods, cls_name)(backbone=backbone, num_classes=num_classes, **kwargs).train()
    hp = module.hparams
    optimizer = build_optimizer(module.parameter_groups(), hp.optimizer, hp.lr, hp.momentum, hp.nesterov,
                                hp.weight_decay)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        module.training_losses(batch)["loss"].backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--num_classes", type=int, default=4)
    parser.add_argument("--methods", nargs="*", help="only these labels (e.g. CAM BAS)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    set_threads(args.threads)
    print(machine())
    print(f"{args.backbone}, {args.size}x{args.size}, batch {args.batch}, {args.steps} timed steps each")
    batch = synthetic_batch(args.num_classes, args.size, args.batch)
    steps: dict[str, Callable[[], None]] = {}
    for label, (cls_name, kwargs) in variants(args.backbone).items():
        if args.methods and label not in args.methods and label != "CAM":
            continue
        try:
            steps[label] = make_step(cls_name, kwargs, args.backbone, args.num_classes, batch)
            steps[label]()  # warm-up
        except Exception:  # report and go on with the others
            print(f"{label}: could not run a step:\n{traceback.format_exc(limit=3)}")
            steps.pop(label, None)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.steps):
        for label, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[label].append(time.perf_counter() - t0)
    cam = median(times["CAM"])
    print(f"{'method':16s} {'ms/step':>9s} {'img/s':>7s} {'x CAM':>6s}")
    for label, values in times.items():
        t = median(values)
        print(f"{label:16s} {t * 1e3:9.1f} {args.batch / t:7.1f} {t / cam:6.2f}")


if __name__ == "__main__":
    main()
