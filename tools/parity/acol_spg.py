"""Golden parity fixtures for ACoL and SPG from a local clone of clovaai/wsolevaluation.

    python tools/parity/acol_spg.py --wsoleval /work/official/wsolevaluation --out tests/fixtures/parity

For ResNet50 and VGG16 (``large_feature_map=False``, the reference's default) the official ``wsol`` package is
imported from the clone at run time (``.cuda()`` made a no-op in memory, float64 default dtype), each
official model is filled with :func:`seeded_state_dict` over its own key/shape list and run on seeded
inputs (batch 2, 224 px): the train forward with the labels, the official ``get_loss`` (and each of its
terms, from the official outputs and the official term functions), backward, gradient norms per official
top-level module plus a few gradient slices, then the eval logits and the official test CAMs
(``return_cam=True``) for the labels and for other classes. Fixtures keep the key/shape list, the seeds
and these numbers: no weights, no official code. They land in ``<out>/acol/`` and ``<out>/spg/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
from _official import import_from
from torch import Tensor, nn

from wsol_lightning.testing import key_shapes_of, save_fixture, seeded_inputs, seeded_state_dict

WEIGHT_SEED, INPUT_SEED, LABEL_SEED = 1701, 1702, 1703
BATCH, SIZE, NUM_CLASSES = 2, 224, 200
ACOL_THRESHOLD = 0.7
SPG_THRESHOLDS = ((0.7, 0.01), (0.5, 0.05), (0.7, 0.1))
SLICE_LEN = 8
#: official parameters whose first gradient values are stored, per method
SLICES = {
    "acol": ("classifier_A.0.weight", "classifier_B.0.weight", "classifier_B.4.bias"),
    "spg": ("SPG_B_shared.0.weight", "SPG_C.0.weight", "SPG_A4.weight", "SPG_A_4.weight", "SPG_B_1a.0.weight"),
}


def load_wsol(clone: Path) -> Any:
    """Import the official ``wsol`` package from the clone, CPU-only and in float64."""
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.set_default_dtype(torch.float64)
    wsol = import_from(clone, "wsol")
    import_from(clone, "wsol.method.spg")
    return wsol


def official_model(wsol: Any, method: str, backbone: str) -> nn.Module:
    """The official model as ``main.py`` builds it (``large_feature_map=False``, no pretrained weights)."""
    build = {"resnet50": wsol.resnet50, "vgg16": wsol.vgg16}[backbone]
    return build(architecture_type=method, pretrained=False, num_classes=NUM_CLASSES, large_feature_map=False,
                 dataset_name="CUB", acol_drop_threshold=ACOL_THRESHOLD, adl_drop_rate=0.75,
                 adl_drop_threshold=0.9)


def loss_terms(wsol: Any, method: str, out: dict[str, Tensor], labels: Tensor) -> dict[str, Tensor]:
    """Each term of the official loss, from the official outputs and the official term functions."""
    if method == "acol":
        ce = nn.CrossEntropyLoss()
        return {"loss_cls": ce(out["logits"], labels), "loss_erased": ce(out["logit_b"], labels)}
    spg = sys.modules["wsol.method.spg"]
    (h1, l1), (h2, l2), (h3, l3) = SPG_THRESHOLDS
    b2i = torch.sigmoid(nn.Upsample(size=(224, 224), mode="bilinear")(out["logits_b2"]))
    return {
        "loss_cls": nn.CrossEntropyLoss()(out["logits"], labels),
        "loss_b2": spg._get_loss_attention(logits=out["logits_b2"], pre_mask=out["attention"], high_thr=h1,
                                           low_thr=l1),
        "loss_b1": spg._get_loss_attention(logits=out["logits_b1"], pre_mask=b2i, high_thr=h2, low_thr=l2),
        "loss_c": spg._get_loss_attention(logits=out["logits_c"], pre_mask=out["fused_attention"], high_thr=h3,
                                          low_thr=l3),
    }


def cell(wsol: Any, method: str, backbone: str) -> dict[str, Any]:
    """Train step, gradients and test maps of one official model."""
    model = official_model(wsol, method, backbone)
    key_shapes = key_shapes_of(model.state_dict())
    model.load_state_dict(seeded_state_dict(key_shapes, WEIGHT_SEED))
    model.double().train()
    images = seeded_inputs((BATCH, 3, SIZE, SIZE), INPUT_SEED)
    gen = torch.Generator().manual_seed(LABEL_SEED)
    labels = torch.randint(0, NUM_CLASSES, (BATCH,), generator=gen)
    other = torch.randint(0, NUM_CLASSES, (BATCH,), generator=gen)
    out = model(images, labels)
    loss = wsol.method.__dict__[method].get_loss(out, labels, spg_thresholds=SPG_THRESHOLDS)
    terms = loss_terms(wsol, method, out, labels)
    loss.backward()
    norms: dict[str, float] = {}
    slices = {}
    for name, param in model.named_parameters():
        if param.grad is None:
            continue
        group = name.split(".")[0]
        norms[group] = norms.get(group, 0.0) + float(param.grad.pow(2).sum())
        if name in SLICES[method]:
            slices[name] = param.grad.flatten()[:SLICE_LEN].clone()
    model.eval()
    with torch.no_grad():
        eval_logits = model(images)["logits"]
        cams = model(images, labels, return_cam=True)
        cams_other = model(images, other, return_cam=True)
    return {
        "method": method, "backbone": backbone, "key_shapes": key_shapes, "weight_seed": WEIGHT_SEED,
        "input_seed": INPUT_SEED, "input_shape": [BATCH, 3, SIZE, SIZE], "labels": labels, "other_classes": other,
        "num_classes": NUM_CLASSES, "acol_threshold": ACOL_THRESHOLD,
        "spg_thresholds": [list(t) for t in SPG_THRESHOLDS],
        "loss": loss.detach(), "terms": {k: v.detach() for k, v in terms.items()},
        "train_logits": out["logits"].detach(), "grad_norms": {k: v ** 0.5 for k, v in norms.items()},
        "grad_slices": slices, "eval_logits": eval_logits, "cams": cams, "cams_other": cams_other,
    }


def main() -> None:
    """Write ``<out>/{acol,spg}/{resnet50,vgg16}.pt``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wsoleval", type=Path, required=True, help="local clone of clovaai/wsolevaluation")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "tests/fixtures/parity")
    parser.add_argument("--methods", nargs="+", default=["acol", "spg"], choices=["acol", "spg"])
    parser.add_argument("--backbones", nargs="+", default=["resnet50", "vgg16"], choices=["resnet50", "vgg16"])
    args = parser.parse_args()
    wsol = load_wsol(args.wsoleval)
    for method in args.methods:
        for backbone in args.backbones:
            torch.manual_seed(0)
            size = save_fixture(args.out / method / f"{backbone}.pt", cell(wsol, method, backbone))
            print(f"{method}/{backbone}.pt: {size / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
