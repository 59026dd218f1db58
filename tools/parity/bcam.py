"""Golden parity fixtures for B-CAM from a local clone of the official code (zh460045050/BCAM).

Runs the *official* modules (imported from the clone at run time, patched in memory only: ``.cuda()`` is a
no-op, the missing ``wsol.method.mislabel`` module and unavailable third-party imports are stubbed, the
ImageNet download of the VOC trunk is skipped) on seeded float64 weights and inputs, and stores the numbers
they produce: the four stagger loss terms, gradient norms per official module and a few gradient slices,
the plain maps, the official gradient test maps of ``inference.py`` (CUB / ILSVRC / OpenImages formulas, raw
and after its bilinear upsampling), the threshold-free mask (object > background) and, for VOC, the
multi-scale + flip seed maps of ``step/make_bcam.py``. No weights and no official code are stored.

    python tools/parity/bcam.py --bcam /work/official/BCAM --out tests/fixtures/parity/bcam
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from _official import load_package
from torch import Tensor, nn

from wsol_lightning.testing import key_shapes_of, save_fixture, seeded_inputs, seeded_state_dict

WEIGHT_SEED, INPUT_SEED, LABEL_SEED, DROPOUT_SEED = 1201, 1202, 1203, 1204
BATCH, SIZE = 2, 224
#: (cell, official module, constructor, target layer, rates ff/fb/bf/bb, large_feature_map) as in Train.sh.
SINGLE_CELLS = {
    "resnet50": ("resnet", "ResNetBCAM", "layer4", (1.0, 1.0, 1.0, 1.0), True),
    "vgg16": ("vgg", "VggBCAM", "conv6", (1.0, 0.4, 0.4, 0.2), False),
    "inception_v3": ("inception", "InceptionBCAM", "SPG_A3_1b", (1.0, 0.4, 0.4, 0.2), True),
}
NUM_CLASSES, NUM_HEADS = 200, 100
VARIANTS = {"cub": "CUB", "ilsvrc": "ILSVRC", "openimages": "OpenImages"}
MAP_ROWS = (0, 37, 111, 150, 223)  # rows of the 224x224 upsampled maps stored
VOC_SCALES, VOC_SIZE, VOC_CLASSES, VOC_HEADS = (1.0, 0.5, 1.5, 2.0), (72, 88), 20, 20
GRAD_SLICE = 6
#: VOC: FixedBatchNorm never normalises with batch statistics, so seeded weights blow up through 16 residual
#: blocks (logits ~3e4); these official-key suffixes are scaled (the test applies the same rule).
VOC_RESCALE = (("bn3.weight", 0.2), ("fc8_fore.weight", 0.1), ("fc8_back.weight", 0.1))


def rescale(state: dict[str, Tensor], rules: tuple[tuple[str, float], ...]) -> dict[str, Tensor]:
    """Multiply every tensor whose key ends with a rule's suffix by its factor."""
    return {k: v * next((f for s, f in rules if k.endswith(s)), 1.0) for k, v in state.items()}


def _stub(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def _load(name: str, path: Path, package: str | None = None) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    module.__package__ = package if package is not None else name.rpartition(".")[0]
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def patch_cuda() -> None:
    """Make ``.cuda()`` a no-op on tensors and modules (in memory; CPU-only parity runs)."""
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]


def load_single(root: Path) -> dict[str, types.ModuleType]:
    """Import the official ``wsol`` package pieces B-CAM needs (not its ``__init__``: it imports ``mislabel``)."""
    src = root / "SingleObjectLocalization"
    wsol = load_package(src / "wsol", "wsol")
    method = load_package(src / "wsol" / "method", "wsol.method")
    for sub in ("util", "acol", "adl", "spg", "bcam"):
        setattr(method, sub, _load(f"wsol.method.{sub}", src / "wsol" / "method" / f"{sub}.py"))
    method.AcolBase, method.ADL = method.acol.AcolBase, method.adl.ADL
    method.normalize_tensor, method.get_attention = method.util.normalize_tensor, method.util.get_attention
    wsol.util = _load("wsol.util", src / "wsol" / "util.py")
    mods = {name: _load(f"wsol.{name}", src / "wsol" / f"{name}.py") for name in ("resnet", "vgg", "inception")}
    # inference.py imports the evaluators (metadata I/O) and skimage only for CAMComputer's set-up/vis.
    _stub("evaluation", BoxEvaluator=None, MaskEvaluator=None, configure_metadata=None)
    _stub("util", t2n=lambda t: t.detach().cpu().numpy())
    _stub("skimage")
    _stub("skimage.segmentation", mark_boundaries=None)
    mods["inference"] = _load("bcam_official_inference", src / "inference.py", package="")
    mods["bcam"] = method.bcam
    return mods


class _Recorder:
    """Stands in for the official evaluator: CAMComputer's loop only calls ``accumulate``."""

    def accumulate(self, *args: Any) -> None:
        pass

    def compute(self) -> None:
        pass

    compute_top1 = compute


def official_test_maps(inference: types.ModuleType, model: nn.Module, images: Tensor, labels: Tensor,
                       target_layer: str, dataset: str) -> dict[str, Tensor]:
    """Run the official ``CAMComputer`` loop (``eval_type='mask'``) and read back what it wrote."""
    raw: list[Tensor] = []
    real_f = inference.F

    class _Capture:  # records the maps ``Generator`` upsamples (bilinear) before returning them
        def __getattr__(self, name: str) -> Any:
            return getattr(real_f, name)

        @staticmethod
        def interpolate(x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
            raw.append(x.detach().clone()[:, 0])
            return real_f.interpolate(x, *args, **kwargs)

    inference.F = _Capture()
    try:
        with tempfile.TemporaryDirectory() as log:
            computer = inference.CAMComputer.__new__(inference.CAMComputer)
            computer.__dict__.update(model=model, loader=[(images, labels, ["img0", "img1"])], split="test",
                                     log_folder=log, wsol_method="bcam", target_layer=target_layer,
                                     eval_type="mask", is_vis=False, dataset_name=dataset, evaluator=_Recorder())
            model.eval()
            computer.compute_and_evaluate_cams()
            read = {kind: torch.from_numpy(np.stack([np.load(Path(log, kind, f"img{i}.npy")) for i in range(2)]))
                    for kind in ("scoremaps", "masks")}
    finally:
        inference.F = real_f
    masks = read["masks"].bool()
    return {"raw_obj": raw[0], "raw_bg": raw[1], "scoremap_rows": read["scoremaps"][:, list(MAP_ROWS)],
            "mask_bits": pack_bits(masks), "mask_shape": list(masks.shape)}


def pack_bits(mask: Tensor) -> Tensor:
    """``bool`` tensor -> uint8 bytes (numpy ``packbits`` order)."""
    return torch.from_numpy(np.packbits(mask.numpy().astype(np.uint8).ravel()))


def gradient_record(model: nn.Module, keys: list[str]) -> dict[str, Any]:
    """Gradient norm per top-level official module and the first values of a few gradients."""
    norms: dict[str, float] = {}
    for name, param in model.named_parameters():
        if param.grad is None:
            continue
        group = name.split(".")[0]
        norms[group] = norms.get(group, 0.0) + float(param.grad.double().pow(2).sum())
    grads = dict(model.named_parameters())
    slices = {k: grads[k].grad.flatten()[:GRAD_SLICE].clone() for k in keys if grads[k].grad is not None}
    return {"grad_norms": {k: v ** 0.5 for k, v in norms.items()}, "grad_slices": slices}


def single_cell(mods: dict[str, types.ModuleType], cell: str, zero_aggregators: bool = False) -> dict[str, Any]:
    """Train step + test maps of one official SingleObjectLocalization model."""
    module_name, cls_name, target_layer, rates, large = SINGLE_CELLS[cell]
    mod = mods[module_name]
    if module_name == "vgg":
        layers = mod.make_layers(mod.configs_dict["bcam"]["28x28" if large else "14x14"])
        model = mod.VggBCAM(layers, num_classes=NUM_CLASSES, num_head=NUM_HEADS)
    elif module_name == "resnet":
        model = mod.ResNetBCAM(mod.Bottleneck, [3, 4, 6, 3], num_classes=NUM_CLASSES, large_feature_map=large,
                               num_head=NUM_HEADS, acol_drop_threshold=None)
    else:
        model = mod.InceptionBCAM(num_classes=NUM_CLASSES, large_feature_map=large, num_head=NUM_HEADS,
                                  dataset_name="CUB")
    key_shapes = key_shapes_of(model.state_dict())
    state = seeded_state_dict(key_shapes, WEIGHT_SEED)
    if zero_aggregators:  # the official initialisation of the aggregators (exact GAP at the start)
        state = {k: torch.zeros_like(v) if k.startswith("aggregator_") else v for k, v in state.items()}
    model.load_state_dict(state)
    model.double().train()
    images = seeded_inputs((BATCH, 3, SIZE, SIZE), INPUT_SEED)
    labels = torch.randint(0, NUM_CLASSES, (BATCH,), generator=torch.Generator().manual_seed(LABEL_SEED))
    torch.manual_seed(DROPOUT_SEED)
    out = model(images, labels)
    get_loss = mods["bcam"].get_loss
    terms = [float(r) * get_loss(out, labels, *(1.0 if j == i else 0.0 for j in range(4))) for i, r in enumerate(rates)]
    loss = get_loss(out, labels, *rates)
    record: dict[str, Any] = {
        "cell": cell, "key_shapes": key_shapes, "weight_seed": WEIGHT_SEED, "input_seed": INPUT_SEED,
        "dropout_seed": DROPOUT_SEED, "input_shape": [BATCH, 3, SIZE, SIZE], "labels": labels,
        "num_classes": NUM_CLASSES, "num_heads": NUM_HEADS, "loss_weights": list(rates),
        "zero_aggregators": zero_aggregators, "terms": torch.stack([t.detach() for t in terms]),
        "loss": loss.detach(), "logits": {k: out[k].detach() for k in
                                          ("logits", "logits_rev", "logits_back", "logits_back_rev")},
    }
    if zero_aggregators:
        return record
    loss.backward()
    names = [k for k, _ in key_shapes if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    record.update(gradient_record(model, [names[0], names[len(names) // 2], *names[-8:]]))
    model.zero_grad()
    model.eval()
    with torch.no_grad():
        _, cams, cams_back, *_ = model(images, labels, return_cam=True)
    record["plain"] = {"obj": cams.detach(), "bg": cams_back.detach()}
    record["target_layer"] = target_layer
    record["maps"] = {variant: official_test_maps(mods["inference"], model, images, labels, target_layer, name)
                      for variant, name in VARIANTS.items()}
    record["map_rows"] = list(MAP_ROWS)
    return record


def load_voc(root: Path) -> dict[str, types.ModuleType]:
    """Import the official VOC (IRN fork) network and seed step (``pydensecrf``/``imageio`` stubbed)."""
    src = root / "MultiObjectLocalization"
    sys.path.insert(0, str(src))
    _stub("pydensecrf")
    _stub("pydensecrf.densecrf")
    _stub("pydensecrf.utils", unary_from_labels=None)
    _stub("imageio")
    with contextlib.chdir(src):  # voc12/dataloader.py reads voc12/cls_labels.npy relative to the cwd
        import net.resnet50 as trunk  # noqa: PLC0415  (from the official clone)
        import net.resnet50_bcam as bcam_net  # noqa: PLC0415
        import step.make_bcam as make_bcam  # noqa: PLC0415

    original = trunk.resnet50
    trunk.resnet50 = lambda pretrained=True, **kw: original(pretrained=False, **kw)  # no ImageNet download
    make_bcam.cuda = types.SimpleNamespace(device=lambda _i: contextlib.nullcontext())
    torch.cuda.device_count = lambda: 1  # one "device" process in _work
    return {"net": bcam_net, "make_bcam": make_bcam}


def scaled_inputs(image: Tensor, scales: tuple[float, ...]) -> list[Tensor]:
    """``(3, H, W)`` -> per scale ``(2, 3, h, w)`` [image, h-flipped]; torch bicubic, align_corners False."""
    out = []
    for s in scales:
        size = (int(round(image.shape[1] * s)), int(round(image.shape[2] * s)))
        x = image[None] if s == 1 else F.interpolate(image[None], size=size, mode="bicubic", align_corners=False)
        out.append(torch.cat([x, x.flip(-1)]))
    return out


def voc_cell(mods: dict[str, types.ModuleType]) -> dict[str, Any]:
    """Train step of the official VOC ``Net`` and the multi-scale + flip seeds of ``make_bcam._work``."""
    net = mods["net"].Net(VOC_HEADS)
    # Its state dict names every trunk/head tensor 2-3 times (resnet50.*, stage1-4.*, backbone.*,
    # newly_added.*): store the first name of each tensor only (the aliases share it).
    seen: set[int] = set()
    primary = {}
    for key, value in net.state_dict(keep_vars=True).items():
        if id(value) not in seen:
            seen.add(id(value))
            primary[key] = value
    key_shapes = key_shapes_of(primary)
    missing, unexpected = net.load_state_dict(rescale(seeded_state_dict(key_shapes, WEIGHT_SEED), VOC_RESCALE),
                                              strict=False)
    assert not unexpected and all(not k.startswith(("resnet50.", "fc")) for k in missing), missing
    net.double()
    net.train()  # the official override only freezes conv1/bn1 (FixedBatchNorm never uses batch stats)
    images = seeded_inputs((BATCH, 3, SIZE, SIZE), INPUT_SEED)
    gen = torch.Generator().manual_seed(LABEL_SEED)
    multi_hot = (torch.rand(BATCH, VOC_CLASSES, generator=gen) < 0.15).double()
    multi_hot[:, 0] = 1.0
    out = net(images)
    terms = torch.stack([
        F.multilabel_soft_margin_loss(out["logits"], multi_hot),
        F.multilabel_soft_margin_loss(out["logits_fore_rev"], 1 - multi_hot),
        F.multilabel_soft_margin_loss(out["logits_back"], torch.ones_like(multi_hot)),
        F.multilabel_soft_margin_loss(out["logits_back_rev"], torch.zeros_like(multi_hot)),
    ])  # the four terms of step/train_bcam.py, weights 1
    terms.sum().backward()
    names = [k for k, _ in key_shapes if k.startswith(("resnet50.", "fc8", "fc_attp"))
             and not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    record: dict[str, Any] = {
        "cell": "voc", "key_shapes": key_shapes, "weight_seed": WEIGHT_SEED, "input_seed": INPUT_SEED,
        "rescale": [list(r) for r in VOC_RESCALE],
        "input_shape": [BATCH, 3, SIZE, SIZE], "multi_hot": multi_hot, "num_classes": VOC_CLASSES,
        "num_heads": VOC_HEADS, "terms": terms.detach(), "loss": terms.sum().detach(),
        "logits": {k: v.detach() for k, v in out.items()},
    }
    record.update(gradient_record(net, ["resnet50.conv1.weight", "resnet50.layer1.0.conv1.weight",
                                        "resnet50.layer2.3.conv3.weight", "resnet50.layer3.0.bn1.weight",
                                        *names[-10:]]))
    record["requires_grad"] = {k: bool(p.requires_grad) for k, p in net.named_parameters()}
    record["no_grad"] = [k for k, p in net.named_parameters() if p.grad is None]
    # Seeds: official CAM network (strict load of the same state dict), one image at VOC_SIZE.
    cam = mods["net"].CAM(VOC_HEADS)
    cam.load_state_dict(net.state_dict(), strict=True)
    cam.double().eval()
    image = seeded_inputs((3, *VOC_SIZE), INPUT_SEED + 1)
    label = torch.zeros(VOC_CLASSES)
    label[[2, 7]] = 1
    pack = {"name": "img0", "img": [x.numpy() for x in scaled_inputs(image, VOC_SCALES)],
            "size": VOC_SIZE, "label": label}
    with tempfile.TemporaryDirectory() as outdir:
        args = types.SimpleNamespace(num_workers=0, cam_out_dir=outdir)
        mods["make_bcam"]._work(0, cam, [[pack] * 20], args)  # 20 items: its progress print divides by len // 20
        saved = np.load(Path(outdir, "img0.npy"), allow_pickle=True).item()
    record["seeds"] = {"image_size": list(VOC_SIZE), "scales": list(VOC_SCALES), "label": label,
                       "keys": torch.as_tensor(saved["keys"]), "high_res": torch.from_numpy(saved["high_res"])}
    return record


def main() -> None:
    """Write the fixtures of the requested cells and print their sizes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bcam", type=Path, required=True, help="local clone of zh460045050/BCAM")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/parity/bcam"))
    parser.add_argument("--cells", nargs="*", default=[*SINGLE_CELLS, "resnet50_zero_init", "voc"])
    args = parser.parse_args()
    torch.set_grad_enabled(True)
    patch_cuda()
    single = load_single(args.bcam) if any(c != "voc" for c in args.cells) else {}
    total = 0
    for cell in args.cells:
        if cell == "voc":
            record = voc_cell(load_voc(args.bcam))
        elif cell == "resnet50_zero_init":
            record = single_cell(single, "resnet50", zero_aggregators=True)
        else:
            record = single_cell(single, cell)
        size = save_fixture(args.out / f"{cell}.pt", record)
        total += size
        print(f"{cell}: loss {float(record['loss']):.6f}, {size / 1024:.1f} KiB", flush=True)
    print(f"total {total / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
