"""Golden parity fixtures for ACoL and SPG from a local clone of clovaai/wsolevaluation.

    python tools/parity/acol_spg.py --wsolevaluation /path/to/wsolevaluation --out tests/fixtures/parity

For ResNet50 and VGG16 (200 classes, batch 2, 224 px, float64 on the CPU; InceptionV3 at 96 px, 6x6 maps;
``large_feature_map=False`` and the
``config.py`` defaults: ACoL threshold 0.7, SPG thresholds 0.7/0.01, 0.5/0.05, 0.7/0.1) the reference's model
(``architecture_type`` ``acol`` / ``spg``, loaded with :mod:`_wsoleval`) is filled with :func:`seeded_state_dict`
over its own key/shape list. One training step runs through the reference's own ``main.Trainer._wsol_training``
(the labelled forward and ``wsol.method.<acol|spg>.get_loss``); each loss term is also computed from the official
outputs with the official term functions (ACoL: the two cross-entropies; SPG: ``_get_loss_attention`` x 3).
Then the eval logits and the test CAMs (``return_cam=True``) for the labels and for other classes, with fresh
weights. The methods have no randomness on these backbones except the three ``F.dropout`` calls of
``InceptionSpg``'s head, whose masks come from ``SeededDropout`` of a stored seed. A fixture keeps the
key/shape list, the seeds, the loss and its terms, every parameter's gradient norm, gradient slices, the eval
logits and the CAMs: no weights, no official code. The six files are about 200 KiB in all.
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path
from typing import Any

import torch
from _official import FIXTURES, import_from, stub_munch
from _wsoleval import (
    DROPOUT_SEED,
    IMAGE_SIZES,
    build_model,
    fixture_header,
    grad_record,
    load_wsol,
    seed_model,
    seeded_batch,
    seeded_inception_dropout,
    test_cams,
)
from torch import Tensor, nn

NUM_CLASSES = 200
SPG_THRESHOLDS = ((0.7, 0.01), (0.5, 0.05), (0.7, 0.1))
ARCHITECTURES = ("resnet50", "vgg16", "inception_v3")
#: official parameters whose first gradient values are stored, per method
SLICES = {
    "acol": ("classifier_A.0.weight", "classifier_B.0.weight", "classifier_B.4.bias", "layer4.2.conv3.weight"),
    "spg": ("SPG_B_shared.0.weight", "SPG_C.0.weight", "SPG_A4.weight", "SPG_A_4.weight", "SPG_B_1a.0.weight",
            "SPG_A_1.0.weight", "SPG_A3_1b.0.weight", "Mixed_6e.branch_pool.conv.weight"),
}


def trainer_step(clone: Path, model: nn.Module, method: str, images: Tensor, labels: Tensor) -> tuple[Tensor, Any]:
    """The reference's ``main.Trainer._wsol_training`` on ``model`` (its argparse config replaced by the values)."""
    stub_munch()
    main = import_from(clone, "main")
    args = types.SimpleNamespace(wsol_method=method, spg_thresholds=SPG_THRESHOLDS, cutmix_prob=0.0,
                                 cutmix_beta=0.0, has_grid_size=4, has_drop_rate=0.5)
    trainer = types.SimpleNamespace(args=args, model=model, cross_entropy_loss=nn.CrossEntropyLoss())
    captured: dict[str, Any] = {}
    forward = model.forward

    def recording_forward(*args: Any, **kwargs: Any) -> Any:
        captured["out"] = forward(*args, **kwargs)
        return captured["out"]

    model.forward = recording_forward  # type: ignore[method-assign]
    try:
        _, loss = main.Trainer._wsol_training(trainer, images, labels)
    finally:
        del model.forward
    return loss, captured["out"]


def loss_terms(method: str, out: dict[str, Tensor], labels: Tensor) -> dict[str, Tensor]:
    """Each term of the official loss, from the official outputs and the official term functions."""
    ce = nn.CrossEntropyLoss()
    if method == "acol":
        return {"loss_cls": ce(out["logits"], labels), "loss_erased": ce(out["logit_b"], labels)}
    spg = sys.modules["wsol.method.spg"]
    (h1, l1), (h2, l2), (h3, l3) = SPG_THRESHOLDS
    b2i = torch.sigmoid(nn.Upsample(size=(224, 224), mode="bilinear")(out["logits_b2"]))
    term = spg._get_loss_attention
    return {
        "loss_cls": ce(out["logits"], labels),
        "loss_b2": term(logits=out["logits_b2"], pre_mask=out["attention"], high_thr=h1, low_thr=l1),
        "loss_b1": term(logits=out["logits_b1"], pre_mask=b2i, high_thr=h2, low_thr=l2),
        "loss_c": term(logits=out["logits_c"], pre_mask=out["fused_attention"], high_thr=h3, low_thr=l3),
    }


def cell(clone: Path, wsol: types.ModuleType, method: str, architecture: str) -> dict[str, Any]:
    """Train step, gradients and test maps of one official model."""
    model = build_model(wsol, architecture, method, NUM_CLASSES)
    key_shapes, state = seed_model(model)
    model.train()
    size = IMAGE_SIZES[architecture]
    images, labels = seeded_batch(NUM_CLASSES, size=size)
    other = torch.randint(0, NUM_CLASSES, labels.shape, generator=torch.Generator().manual_seed(4321))
    with seeded_inception_dropout():
        loss, out = trainer_step(clone, model, method, images, labels)
    dropout = {"dropout_seed": DROPOUT_SEED} if (architecture, method) == ("inception_v3", "spg") else {}
    terms = {k: v.detach() for k, v in loss_terms(method, out, labels).items()}
    loss.backward()
    record = grad_record(model, SLICES[method])
    record.update(test_cams(model, images, labels, state))
    with torch.no_grad():
        record["cams_other"] = model(images, other, return_cam=True).clone()
    header = fixture_header(f"{method}/{architecture}", architecture, method, NUM_CLASSES, key_shapes, labels,
                            other_classes=other, acol_threshold=0.7, image_size=size,
                            spg_thresholds=[list(t) for t in SPG_THRESHOLDS], **dropout)
    return {**header, "loss": loss.detach(), "terms": terms, **record}


def main() -> None:
    """Write ``<out>/{acol,spg}/{resnet50,vgg16,inception_v3}.pt``."""
    from wsol_lightning.testing import save_fixture

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wsolevaluation", type=Path, required=True, help="local clone of clovaai/wsolevaluation")
    parser.add_argument("--out", type=Path, default=FIXTURES)
    parser.add_argument("--methods", nargs="+", default=["acol", "spg"], choices=["acol", "spg"])
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    args = parser.parse_args()
    wsol = load_wsol(args.wsolevaluation)
    for method in args.methods:
        for architecture in args.architectures:
            size = save_fixture(args.out / method / f"{architecture}.pt", cell(args.wsolevaluation, wsol, method,
                                                                                  architecture))
            print(f"{method}/{architecture}.pt: {size / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
