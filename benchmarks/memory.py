"""Peak memory of a BAS ResNet50 training step against a bare ResNet50 step (batch 8, 224x224).
Target: BAS <= 1.5x the bare step.

Each case runs in its own subprocess (a fresh allocator, nothing shared); the peak is the process's
``ru_maxrss`` after two steps (forward + loss + backward + SGD with momentum, so the optimizer state
exists), and the step's own share is that peak minus the resident size just before the first step
(imports, weights and the batch already loaded). Cases: ``bare`` (timm ResNet50 classifier, cross-entropy),
``cam`` (this library's CAM: layer4 at stride 1), ``bas`` (this library's BAS, paper defaults) and
``bas+checkpoint`` (BAS with ``checkpoint_background=True``).

    python benchmarks/memory.py                          # resnet50, batch 8, 224 (a few minutes on CPU)
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

TARGET = 1.5


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(case: str, backbone: str, size: int, batch: int, num_classes: int) -> None:
    import torch
    import torch.nn.functional as F  # noqa: N812

    torch.set_num_threads(1)
    torch.manual_seed(0)
    images = torch.randn(batch, 3, size, size)
    labels = torch.randint(0, num_classes, (batch,))
    if case == "bare":
        import timm

        net = timm.create_model(backbone, pretrained=False, num_classes=num_classes).train()
        optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

        def loss_fn() -> torch.Tensor:
            return F.cross_entropy(net(images), labels)
    else:
        import wsol_lightning.methods as methods
        from wsol_lightning.methods.optim import build_optimizer

        name, _, option = case.partition("+")
        kwargs = {"checkpoint_background": True} if option == "checkpoint" else {}
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
    print(json.dumps({"before_mib": before, "peak_mib": peak_mib()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--num_classes", type=int, default=200)
    parser.add_argument("--cases", nargs="+", default=["bare", "cam", "bas", "bas+checkpoint"])
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
            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
        if out.returncode != 0:
            print(f"{case}: failed\n{out.stderr[-3000:]}")
            continue
        results[case] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[case]
        print(f"{case:5s}: peak {r['peak_mib']:7.0f} MiB; before the step {r['before_mib']:7.0f} MiB; "
              f"step {r['peak_mib'] - r['before_mib']:7.0f} MiB")
    if "bare" in results:
        base = results["bare"]
        for case, r in results.items():
            if case == "bare":
                continue
            total = r["peak_mib"] / base["peak_mib"]
            step = (r["peak_mib"] - r["before_mib"]) / (base["peak_mib"] - base["before_mib"])
            line = f"{case} / bare: peak {total:.2f}x, step share {step:.2f}x"
            if case.startswith("bas"):
                line += f" (peak {'meets' if total <= TARGET else 'MISSES'} target <= {TARGET:g})"
            print(line)


if __name__ == "__main__":
    main()
