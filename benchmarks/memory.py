"""Peak memory of a BAS ResNet50 training step against a bare ResNet50 step (batch 8, 224x224).
Target: BAS <= 1.5x the bare step.

Each case runs in its own subprocess (a fresh allocator, nothing shared) that first imports the same
libraries (torch, timm, wsol_lightning.methods, so the code's own memory is the same in every case), then
builds its model and optimizer and runs two steps (forward + loss + backward + SGD with momentum, so the
optimizer state exists). Measured with the kernel's counters: ``ru_maxrss`` (peak resident set) at the end,
and ``/proc/self/statm`` after the imports and just before the first step. The children run with a fixed
glibc mmap threshold (``CHILD_ENV``): every tensor above 128 KiB is ``mmap``-ed and returned on free, so
the resident set follows the live tensors (no allocator cache, the same on every run).
Two ratios to the bare step are printed, each beside the target:

* ``peak``: whole-process peak RSS over the bare case's (the imports, ~0.9 GiB, count on both sides);
* ``net``: (peak - RSS after the imports), i.e. weights + gradients + optimizer state + activations +
  workspace: what the step itself costs (the stricter figure).

Cases: ``bare`` (timm ResNet50 classifier, cross-entropy), ``cam`` (this library's CAM: layer4 at stride
1), ``bas`` (this library's BAS, paper defaults) and ``bas+<options>`` (BAS with ``__init__`` options, e.g.
``bas+checkpoint_blocks=5``).

    python benchmarks/memory.py                          # resnet50, batch 8, 224 (a few minutes on CPU)
    python benchmarks/memory.py --cases bare bas bas+checkpoint_background=true
    python benchmarks/memory.py --backbone resnet18 --size 96 --cases bare bas
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from _common import parse_options, verdict

TARGET = 1.5
#: one thread; glibc serves every allocation above 128 KiB by mmap and returns it on free (a fixed threshold,
#: not glibc's adaptive one, which made the same case's peak vary by ~100 MiB from run to run)
CHILD_ENV = {"OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(case: str, backbone: str, size: int, batch: int, num_classes: int) -> None:
    import timm
    import torch
    import torch.nn.functional as F  # noqa: N812

    import wsol_lightning.methods as methods
    from wsol_lightning.methods.optim import build_optimizer

    imports = rss_mib()  # the same imports in every case: the baseline subtracted for the "net" ratio
    torch.set_num_threads(1)
    torch.manual_seed(0)
    images = torch.randn(batch, 3, size, size)
    labels = torch.randint(0, num_classes, (batch,))
    if case == "bare":
        net = timm.create_model(backbone, pretrained=False, num_classes=num_classes).train()
        optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

        def loss_fn() -> torch.Tensor:
            return F.cross_entropy(net(images), labels)
    else:
        name, _, options = case.partition("+")
        kwargs = parse_options(options)
        module = getattr(methods, name.upper())(backbone=backbone, num_classes=num_classes, **kwargs).train()
        hp = module.hparams
        optimizer = build_optimizer(module.parameter_groups(), hp.optimizer, hp.lr, hp.momentum, hp.nesterov,
                                    hp.weight_decay)
        boxes = [torch.tensor([[0, 0, size - 1, size - 1]])] * batch
        batch_dict = {"image": images, "label": labels, "boxes": boxes}

        def loss_fn() -> torch.Tensor:
            return module.training_losses(batch_dict)["loss"]

    before = rss_mib()
    for _ in range(2):
        optimizer.zero_grad(set_to_none=True)
        loss_fn().backward()
        optimizer.step()
    print(json.dumps({"imports_mib": imports, "before_mib": before, "peak_mib": peak_mib()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--num_classes", type=int, default=200)
    parser.add_argument("--cases", nargs="+",
                        default=["bare", "cam", "bas", "bas+checkpoint_blocks=5", "bas+checkpoint_extractor=true"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.backbone, args.size, args.batch, args.num_classes)
        return
    from _common import machine

    print(machine())
    print(f"{args.backbone}, batch {args.batch}, {args.size}x{args.size}, {args.num_classes} classes, 2 SGD steps")
    results = {}
    for case in args.cases:
        out = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", case, "--backbone", args.backbone,
             "--size", str(args.size), "--batch", str(args.batch), "--num_classes", str(args.num_classes)],
            capture_output=True, text=True, env={**os.environ, **CHILD_ENV}, check=False)
        if out.returncode != 0:
            print(f"{case}: failed\n{out.stderr[-3000:]}")
            continue
        r = results[case] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{case:20s}: peak {r['peak_mib']:6.0f} MiB; after imports {r['imports_mib']:6.0f}; before the step "
              f"{r['before_mib']:6.0f}; net (peak - imports) {r['peak_mib'] - r['imports_mib']:6.0f} MiB")
    if "bare" not in results:
        return
    base = results["bare"]
    for case, r in results.items():
        if case == "bare":
            continue
        peak = r["peak_mib"] / base["peak_mib"]
        net = (r["peak_mib"] - r["imports_mib"]) / (base["peak_mib"] - base["imports_mib"])
        line = f"{case} / bare: peak {peak:.2f}x"
        if case.startswith("bas"):
            line += f" ({verdict(peak, TARGET)})"
        line += f", net {net:.2f}x"
        if case.startswith("bas"):
            line += f" ({verdict(net, TARGET)})"
        print(line)


if __name__ == "__main__":
    main()
