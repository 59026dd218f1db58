"""Time one BAS ResNet50 training step of this library against the official code, in the same process.

"The official way" is the official model file (wpy1999/BAS ``CUB/Model/resnet.py``, imported from a local
clone given by ``--official``; the column is skipped when absent) trained as ``CUB/train.py`` does: its
forward deep-copies layer4 and the head at every step, runs the background branch through the copies
with their weight gradients computed and thrown away, and gathers per sample in Python loops; the
optimizer is the official ``get_optimizer``. This library's :class:`~wsol_lightning.methods.BAS` gets the
same weights (official-checkpoint converter) and runs ``training_losses`` + backward + its own optimizer.
Each ``--options`` set adds a library variant built with those ``__init__`` arguments. Steps (forward +
loss + backward + SGD) are interleaved across variants; the first loss of each variant is printed so the
objectives can be seen to agree. Target: this library >= 1.3x faster than the official way.

    python benchmarks/bas_step.py --official /path/BAS --steps 5          # ResNet50, batch 8, 224
    python benchmarks/bas_step.py --official /path/BAS --options channels_last=true compile=true
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from _common import machine, parse_options, set_threads, verdict
from _official_bas import library_twin, load_official, official_clone, official_loss

TARGET = 1.3


def library_variant(official: torch.nn.Module | None, options: dict[str, Any]) -> tuple[Callable[..., Any], Any]:
    """A library BAS with ``options`` (the official model's weights, else seed 0), its loss and optimizer."""
    from wsol_lightning.methods import BAS
    from wsol_lightning.methods.optim import build_optimizer

    if official is not None:
        module = library_twin(official, **options)
    else:
        torch.manual_seed(0)
        module = BAS(backbone="resnet50", num_classes=200, **options).train()
    hp = module.hparams
    optimizer = build_optimizer(module.parameter_groups(), hp.optimizer, hp.lr, hp.momentum, hp.nesterov,
                                hp.weight_decay)
    return (lambda images, labels: module.training_losses({"image": images, "label": labels})["loss"]), optimizer


def timed_step(loss_fn: Callable[..., Any], optimizer: Any, images: torch.Tensor,
               labels: torch.Tensor) -> tuple[float, float, float]:
    """One step (zero_grad, forward + loss, backward, SGD): wall seconds, this process's CPU seconds, loss."""
    start, start_cpu = time.perf_counter(), time.process_time()
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(images, labels)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start, time.process_time() - start_cpu, float(loss.detach())


def print_profile(name: str, loss_fn: Callable[..., Any], optimizer: Any, images: torch.Tensor,
                  labels: torch.Tensor, rows: int = 14) -> None:
    """Run one more step of ``name`` under ``torch.profiler`` and print its most expensive ops (self CPU)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        timed_step(loss_fn, optimizer, images, labels)
    print(f"--- profile of one step of {name}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main() -> None:
    """Build the variants with the same weights, time interleaved steps, print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", default=None, help="local clone of wpy1999/BAS (skipped if absent)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant (after 1 warm-up)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--options", nargs="*", default=[], help='library variants, e.g. "channels_last=true"')
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's top ops of one more step")
    args = parser.parse_args()
    set_threads(args.threads)
    torch.manual_seed(0)
    images = torch.randn(args.batch, 3, 224, 224)  # the official network hard-codes 224 (28x28 maps)
    labels = torch.randint(0, 200, (args.batch,))
    clone = official_clone(args.official)
    runs: dict[str, tuple[Callable[..., Any], Any]] = {}
    official = None
    if clone is None:
        print(f"official clone not found at {args.official!r}: the official column is skipped")
    else:
        official, make_optimizer = load_official(clone)
        runs["official"] = (lambda i, y: official_loss(official, i, y)), make_optimizer(official)
    for text in ["", *args.options]:
        runs[f"library {text}".strip()] = library_variant(official, parse_options(text))
    times: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    warm: dict[str, list[float]] = {name: [] for name in runs}
    first: dict[str, float] = {}
    for step in range(args.steps + args.warmup):
        for name, (loss_fn, optimizer) in runs.items():
            seconds, cpu_seconds, loss = timed_step(loss_fn, optimizer, images, labels)
            first.setdefault(name, loss)
            if step >= args.warmup:
                times[name].append(seconds)
                cpu[name].append(cpu_seconds)
            else:
                warm[name].append(seconds)
    print(machine())
    print(f"resnet50 BAS (CVPR, CUB recipe), batch {args.batch}, 224x224, 200 classes, "
          f"{args.steps} timed steps after {args.warmup} warm-up, interleaved")
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    for name, ts in times.items():
        print(f"{name:40s} first loss {first[name]:.10f}  median {medians[name]:7.3f} s/step  "
              f"min {min(ts):7.3f}  CPU median {statistics.median(cpu[name]):7.3f}  "
              f"warm-up (compilation) {', '.join(f'{t:.1f}' for t in warm[name])} s  "
              f"all: {', '.join(f'{t:.2f}' for t in ts)}")
    if args.profile:
        for name, (loss_fn, optimizer) in runs.items():
            print_profile(name, loss_fn, optimizer, images, labels)
    if "official" not in medians:
        return
    for name, median in medians.items():
        if name != "official":
            ratio = medians["official"] / median
            best = min(times["official"]) / min(times[name])
            paired = statistics.median(o / t for o, t in zip(times["official"], times[name]))
            cpu_ratio = statistics.median(cpu["official"]) / statistics.median(cpu[name])
            print(f"speed-up of {name} over the official way: {ratio:.2f}x of the medians "
                  f"({verdict(ratio, TARGET, higher_is_worse=False)}); median of the per-round ratios "
                  f"{paired:.2f}x ({verdict(paired, TARGET, higher_is_worse=False)}); fastest steps {best:.2f}x; "
                  f"CPU time {cpu_ratio:.2f}x ({verdict(cpu_ratio, TARGET, higher_is_worse=False)})")


if __name__ == "__main__":
    main()
