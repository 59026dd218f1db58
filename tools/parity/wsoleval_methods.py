"""Golden parity fixtures for HaS, CutMix, ADL and CAM from clovaai/wsolevaluation.

    python tools/parity/wsoleval_methods.py --wsolevaluation /path/to/wsolevaluation \
        --out tests/fixtures/parity

For each method on ResNet50 and VGG16 (200 classes, batch 2, 224 px, float64 on the CPU) and InceptionV3 (96 px:
6x6 maps, the same network) the reference's model (``wsol.resnet50`` / ``wsol.vgg16`` / ``wsol.inception_v3``
with ``architecture_type`` ``cam`` for CAM, HaS and CutMix, ``adl`` for ADL) is filled with
:func:`seeded_state_dict` over its own key/shape list, and one training step runs through
the reference's own ``main.Trainer._wsol_training`` (which applies ``wsol.method.has`` / ``wsol.method.cutmix``
and the loss) with its randomness replaced in memory by fixed draws: HaS's ``random.random()`` by seeded
uniforms, CutMix's ``np.random.rand``/``np.random.beta``/``torch.randperm``/``np.random.randint`` by stored
values, ADL's ``torch.rand`` by stored values (both branches of the layer are exercised), and the three
``F.dropout`` calls of ``InceptionCam`` by :class:`SeededDropout` masks of a stored seed. Then the test CAMs
(``return_cam=True``) are computed with fresh weights. A fixture keeps the key/shape list, the seeds, the
draws, the loss, the gradient norm of every parameter, gradient slices, the eval logits and the CAMs; no
weights and no official code. CAM itself has only an InceptionV3 cell (its ResNet50/VGG16 network is HaS's
with hiding off). The ten files are about 300 KiB in all (the InceptionV3 ones ~44 KiB each).
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _official import FIXTURES, import_from, stub_munch
from _wsoleval import (
    DROPOUT_SEED,
    IMAGE_SIZES,
    build_model,
    draws,
    fixed_attr,
    fixture_header,
    grad_record,
    load_wsol,
    proxy,
    seed_model,
    seeded_batch,
    seeded_inception_dropout,
    test_cams,
)

from wsol_lightning.testing import save_fixture

NUM_CLASSES = 200
ARCHITECTURES = ("resnet50", "vgg16", "inception_v3")
METHODS = ("has", "cutmix", "adl", "cam")
#: the architectures of each method (CAM's ResNet50/VGG16 network is checked by the HaS cells)
METHOD_ARCHITECTURES = {"has": ARCHITECTURES, "cutmix": ARCHITECTURES, "adl": ARCHITECTURES, "cam": ("inception_v3",)}
#: HaS cells: the reference's default grid (4 px, divides 224) on ResNet50; grids that leave a narrower last
#: row/column (36 px: 6 x 36 + 8 on VGG16; 20 px: 4 x 20 + 16 on InceptionV3 at 96).
HAS_ARGS = {"resnet50": (4, 0.5), "vgg16": (36, 0.5), "inception_v3": (20, 0.5)}
HAS_SEED = 4321
#: CutMix draws: coin (mixed since prob 1 > coin), lam, permutation, box centre (dim 2, dim 3).
CUTMIX_DRAWS = {"resnet50": (0.3, 0.62, [1, 0], (40, 190)), "vgg16": (0.8, 0.35, [1, 0], (120, 100)),
                "inception_v3": (0.5, 0.45, [1, 0], (30, 70))}
#: ADL draws, one per layer in forward order (float32, as ``torch.rand([], dtype=float32)``): with drop rate
#: 0.75, 0.1 -> importance map, 0.6 and 0.3 -> drop mask.
ADL_DRAWS = (0.1, 0.6, 0.3)
SLICES = ("conv1.weight", "fc.weight", "layer4.2.conv3.weight", "layer4.3.conv3.weight", "features.0.weight",
          "conv6.weight", "Conv2d_1a_3x3.conv.weight", "Mixed_6e.branch_pool.conv.weight", "SPG_A3_1b.0.weight",
          "SPG_A4.weight")


def _args(method: str, architecture: str) -> types.SimpleNamespace:
    grid, rate = HAS_ARGS[architecture]
    return types.SimpleNamespace(wsol_method=method, cutmix_prob=1.0, cutmix_beta=1.0, has_grid_size=grid,
                                 has_drop_rate=rate, spg_thresholds=None)


def _reference_step(main: types.ModuleType, model: torch.nn.Module, method: str, architecture: str,
                    images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
    """One ``Trainer._wsol_training`` call of the reference with fixed draws; returns the loss and the draws."""
    trainer = types.SimpleNamespace(args=_args(method, architecture), model=model,
                                    cross_entropy_loss=torch.nn.CrossEntropyLoss())
    # the submodules (``wsol.method.has`` as an attribute is the function of the same name)
    has_mod, cutmix_mod, adl_mod = (sys.modules[f"wsol.method.{m}"] for m in ("has", "cutmix", "adl"))
    record: dict[str, Any] = {}
    images = images.clone()  # the reference edits its input in place
    if method == "has":
        grid, rate = HAS_ARGS[architecture]
        rows = -(-images.shape[2] // grid)
        uniforms = torch.rand(images.shape[0], rows, rows, generator=torch.Generator().manual_seed(HAS_SEED),
                              dtype=torch.float64)
        record.update(has_seed=HAS_SEED, grid_size=grid, drop_rate=rate)
        with fixed_attr(has_mod, "random", proxy(has_mod.random, random=draws(uniforms.flatten().tolist()))):
            _, loss = main.Trainer._wsol_training(trainer, images, labels)
    elif method == "cutmix":
        coin, lam, perm, (cx, cy) = CUTMIX_DRAWS[architecture]
        record.update(coin=coin, lam=lam, permutation=torch.tensor(perm), centre=[cx, cy], beta=1.0, prob=1.0)
        main_np = proxy(np, random=proxy(np.random, rand=draws([np.array([coin])])))
        cut_np = proxy(np, int=int, random=proxy(np.random, beta=draws([lam]), randint=draws([cx, cy])))
        cut_torch = proxy(torch, randperm=draws([torch.tensor(perm)]))
        with fixed_attr(main, "np", main_np), fixed_attr(cutmix_mod, "np", cut_np), \
                fixed_attr(cutmix_mod, "torch", cut_torch):
            _, loss = main.Trainer._wsol_training(trainer, images, labels)
    elif method == "cam":
        _, loss = main.Trainer._wsol_training(trainer, images, labels)
    else:
        values = [torch.tensor(u, dtype=torch.float32) for u in ADL_DRAWS]
        record.update(uniforms=list(ADL_DRAWS), drop_rate=0.75, threshold=0.9)
        with fixed_attr(adl_mod, "torch", proxy(torch, rand=draws(values))):
            _, loss = main.Trainer._wsol_training(trainer, images, labels)
    return loss, record


def run_cell(wsol: types.ModuleType, main: types.ModuleType, method: str, architecture: str) -> dict[str, Any]:
    """Record one (method, architecture) cell of the reference."""
    arch_type = "adl" if method == "adl" else "cam"
    model = build_model(wsol, architecture, arch_type, NUM_CLASSES)
    key_shapes, state = seed_model(model)
    size = IMAGE_SIZES[architecture]
    images, labels = seeded_batch(NUM_CLASSES, size=size)
    model.train()
    with seeded_inception_dropout():
        loss, record = _reference_step(main, model, method, architecture, images, labels)
    if architecture == "inception_v3" and arch_type == "cam":
        record["dropout_seed"] = DROPOUT_SEED
    loss.backward()
    fixture = fixture_header(f"{method}_{architecture}", architecture, arch_type, NUM_CLASSES, key_shapes,
                             labels, method=method, image_size=size, **record)
    fixture["loss"] = loss.detach()
    fixture.update(grad_record(model, SLICES))
    fixture.update(test_cams(model, images, labels, state))
    return fixture


def main(argv: list[str] | None = None) -> None:
    """Write ``<out>/<method>/<architecture>.pt`` for every cell."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wsolevaluation", type=Path, required=True, help="clone of clovaai/wsolevaluation")
    parser.add_argument("--out", type=Path, default=FIXTURES)
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--architectures", nargs="*", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    args = parser.parse_args(argv)
    stub_munch()
    wsol = load_wsol(args.wsolevaluation)
    reference_main = import_from(args.wsolevaluation, "main")
    total = 0
    for method in args.methods:
        for architecture in (a for a in METHOD_ARCHITECTURES[method] if a in args.architectures):
            size = save_fixture(args.out / method / f"{architecture}.pt",
                                run_cell(wsol, reference_main, method, architecture))
            total += size
            print(f"{method}/{architecture}: {size / 1024:.1f} KiB")
    print(f"total: {total / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
