"""Time one BAS training step against the same network trained the official way, and a CAM step.

The official CVPR code (wpy1999/BAS, CUB/Model/*.py) deep-copies the rest of the network (layer4 + head)
inside every forward, runs the background branch through that copy with gradients enabled for the copy's
weights (computed, then thrown away) and gathers ``M_y``, ``S_y``, ``S^b_y`` with per-sample Python loops.
This library runs the background branch with ``torch.func.functional_call`` on detached parameters (no
copy, no weight gradients) and gathers with indexing. Both are timed here on the same
:class:`~wsol_lightning.methods.bas.model.BASNet` (forward + loss + backward + SGD step), interleaved,
in one process.

    python benchmarks/bas_step.py --batch 8 --size 224 --steps 3     # ResNet50 (slow on CPU)
    python benchmarks/bas_step.py --backbone resnet18 --size 96 --steps 5
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812

from wsol_lightning.methods.bas.loss import (
    area_loss,
    background_activation_loss,
    classification_loss,
    foreground_guidance_loss,
    gather_class,
)
from wsol_lightning.methods.bas.model import BASNet
from wsol_lightning.methods.cam.model import CAMNet

ALPHA, BETA = 0.5, 1.2


def library_loss(net: BASNet, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """BAS as this library computes it (what ``BAS.training_losses`` does)."""
    out = net(images)
    foreground = gather_class(out["fpm"], labels)
    background = gather_class(net.background_logits(out["mid"], foreground), labels)
    return (classification_loss(out["logits"], labels)
            + ALPHA * foreground_guidance_loss(out["cams"], foreground, labels)
            + background_activation_loss(background, gather_class(out["logits"], labels), 0.0)
            + BETA * area_loss(foreground))


def official_loss(net: BASNet, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The same losses computed the official way: deepcopy per step, weight grads for the copy, loops."""
    out = net(images)
    batch = images.shape[0]
    foreground = torch.stack([out["fpm"][i, labels[i]] for i in range(batch)])
    tail_copy = copy.deepcopy(net.tail)  # requires_grad stays on: backward fills the copy's .grad
    background_maps = tail_copy(out["mid"].detach() * (1 - foreground[:, None]))
    background_logits = background_maps.mean(dim=(2, 3))
    s_b = torch.stack([background_logits[i, labels[i]] for i in range(batch)])
    s_y = torch.stack([out["logits"][i, labels[i]] for i in range(batch)]).detach()
    ratio = s_b / (s_y + 1e-8)
    ratio = ratio.clone()
    for i in range(batch):  # in-place masked assignment of the clip constant
        if s_b[i] >= s_y[i]:
            ratio[i] = 0.0
    pooled = F.avg_pool2d(foreground[:, None], 2)
    frg_logits = torch.stack([(out["cams"][i] * pooled[i]).mean(dim=(1, 2)) for i in range(batch)])
    return (F.cross_entropy(out["logits"], labels) + ALPHA * F.cross_entropy(frg_logits, labels)
            + ratio.mean() + BETA * foreground.mean())


def cam_loss(net: CAMNet, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """CAM's cross-entropy step on the same trunk family (wsolevaluation's ResNet50 CAM)."""
    return F.cross_entropy(net(images)["logits"], labels)


def time_step(net: torch.nn.Module, loss_fn: Callable, images: torch.Tensor, labels: torch.Tensor,
              optimizer: torch.optim.Optimizer) -> float:
    """Seconds of one forward + loss + backward + SGD step."""
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    loss_fn(net, images, labels).backward()
    optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    """Parse arguments, warm up, time the three steps interleaved, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--classes", type=int, default=200)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant (after 1 warm-up)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = torch.randn(args.batch, 3, args.size, args.size)
    labels = torch.randint(0, args.classes, (args.batch,))
    bas = BASNet(args.backbone, args.classes).train()
    cam = CAMNet(args.backbone, args.classes).train()
    runs = {
        "bas (this library)": (bas, library_loss),
        "bas (official way)": (bas, official_loss),
        "cam": (cam, cam_loss),
    }
    optimizers = {name: torch.optim.SGD(net.parameters(), lr=1e-6, momentum=0.9)
                  for name, (net, _) in runs.items()}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for step in range(args.steps + 1):
        for name, (net, loss_fn) in runs.items():
            seconds = time_step(net, loss_fn, images, labels, optimizers[name])
            if step > 0:
                times[name].append(seconds)
    print(f"backbone={args.backbone} batch={args.batch} size={args.size} classes={args.classes} "
          f"steps={args.steps} threads={torch.get_num_threads()}")
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    for name, ts in times.items():
        print(f"{name:20s} median {medians[name]:8.3f} s/step   all: {', '.join(f'{t:.3f}' for t in ts)}")
    speedup = medians["bas (official way)"] / medians["bas (this library)"]
    print(f"speed-up of this library over the official way: {speedup:.2f}x")
    print(f"BAS step / CAM step: {medians['bas (this library)'] / medians['cam']:.2f}x")


if __name__ == "__main__":
    main()
