"""How well can a map of a given size localise? The GT mask pooled to s x s, upsampled and scored (issue 13).

Usage:
    python benchmarks/map_ceiling.py [--dataset pets] [--split test] [--image_size 64] [--sizes 2,4,8,16]

A method whose localisation map is ``s x s`` (CAM on resnet10t at 64 px: 4x4; BAS and B-CAM: 8x8) cannot do
better than the object's own mask seen at that resolution. For each ``s`` the script average-pools every
image's GT object mask (pixels labelled 1) to ``s x s``, upsamples it to the image as the evaluation does
(bicubic, then min-max normalised: :func:`~wsol_lightning.metrics.functional.upsample_and_normalize`) and
scores MaxBoxAccV2 and PxAP with the library's metrics. The centre-Gaussian baseline and a uniform-noise map
are scored beside them. If the ceiling at a method's map size is under the centre Gaussian, no training can
help that method; if it is far above, the maps' resolution is not what holds the method back.

The datasets and their arguments are those of ``benchmarks/generalization.py`` (masks are needed: every one
of them has masks).
"""

from __future__ import annotations

import argparse
import json

import _common  # noqa: F401  (sets the offline environment variables)
import torch
import torch.nn.functional as F
from generalization import DATASETS, PETS_DIR


def build_datamodule(dataset: str, image_size: int, pets_val_per_class: int):
    """The datamodule of ``dataset`` as the generalization benchmark builds it."""
    import importlib

    spec = json.loads(json.dumps(DATASETS[dataset]))
    module, _, name = spec["class_path"].rpartition(".")
    kwargs = dict(spec["init_args"], image_size=image_size, batch_size=64, num_workers=0)
    if dataset == "pets":
        kwargs.update(data_dir=str(PETS_DIR), val_per_class=pets_val_per_class)
    return getattr(importlib.import_module(module), name)(**kwargs)


def ceiling_scores(loader, sizes: list[int], seed: int = 0) -> dict[str, dict[str, float]]:
    """MaxBoxAccV2 and PxAP of the pooled-mask maps at each size, the centre Gaussian and uniform noise."""
    from wsol_lightning.methods.baselines import centre_gaussian_maps
    from wsol_lightning.metrics import MaxBoxAcc, PxAP
    from wsol_lightning.metrics.functional import upsample_and_normalize

    names = [f"{s}x{s}" for s in sizes] + ["centre_gaussian", "uniform_noise"]
    metrics = {n: (MaxBoxAcc(cam_curve_interval=0.01), PxAP(cam_curve_interval=0.01)) for n in names}
    generator = torch.Generator().manual_seed(seed)
    for batch in loader:
        mask = batch["mask"]
        b, h, w = mask.shape
        obj = (mask == 1).to(torch.float64)[:, None]
        maps = {f"{s}x{s}": upsample_and_normalize(F.adaptive_avg_pool2d(obj, s)[:, 0], (h, w)) for s in sizes}
        maps["centre_gaussian"] = centre_gaussian_maps(b, h, w)
        maps["uniform_noise"] = torch.rand(b, h, w, generator=generator, dtype=torch.float64)
        for name, m in maps.items():
            metrics[name][0].update(m, batch["boxes"])
            metrics[name][1].update(m, mask)
    return {n: {"maxboxacc_v2": float(box.compute()["maxboxacc_v2"]), "pxap": float(pix.compute()["pxap"])}
            for n, (box, pix) in metrics.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="pets", choices=list(DATASETS))
    p.add_argument("--split", default="test", choices=["val", "test"])
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--sizes", default="2,4,8,16", help="map sides to score, comma-separated")
    p.add_argument("--pets_val_per_class", type=int, default=20)
    args = p.parse_args(argv)
    dm = build_datamodule(args.dataset, args.image_size, args.pets_val_per_class)
    dm.setup("test" if args.split == "test" else "validate")
    loader = dm.test_dataloader() if args.split == "test" else dm.val_dataloader()
    scores = ceiling_scores(loader, [int(s) for s in args.sizes.split(",")])
    print(f"{args.dataset} {args.split} at {args.image_size} px: map -> MaxBoxAccV2 / PxAP")
    for name, s in scores.items():
        print(f"  {name:16s} {s['maxboxacc_v2']:5.1f} / {s['pxap']:5.1f}")


if __name__ == "__main__":
    main()
