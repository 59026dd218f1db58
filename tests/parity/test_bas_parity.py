"""Golden parity of BAS with the official code (fixtures written by ``tools/parity/bas.py``).

Each cell rebuilds the official-format state dict from the stored key/shape list and seed, converts it
with :func:`wsol_lightning.methods.bas.official.convert_official_state_dict`, loads it into
:class:`~wsol_lightning.methods.BAS` and requires the official numbers in float64 to 1e-10 (relative):
the four loss terms and their weighted sum, the gradient norm of every official parameter, gradient
slices, the eval logits and the raw test maps (top-1 and top-k fusion; the WSSS flip-fused seed map).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from wsol_lightning.methods import BAS
from wsol_lightning.methods.bas.official import convert_official_state_dict, official_key_map
from wsol_lightning.testing import assert_matches, load_fixture, seeded_inputs, seeded_state_dict

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity" / "bas"
RTOL = 1e-10
BACKBONES = {"vgg16": "vgg16", "resnet50": "resnet50", "inception_v3": "inception_v3",
             "mobilenetv1": "mobilenetv1_100"}
CELLS = [f"{v}_{b}" for v in ("cvpr", "ijcv") for b in BACKBONES] + ["wsss_resnet50"]
WSSS_ARGS = {"multilabel": True, "detach_frg_features": True, "mid_tap": 3, "high_tap": 4,
             "stride_one_taps": [4], "pool_between": "none", "head_convs": 0, "head_bias": False}


def build_library(cell: str, fixture: dict, **overrides) -> BAS:
    """The library's BAS for a cell, with unit loss weights (each raw term is compared)."""
    variant, backbone = cell.split("_", 1)
    kwargs = {"backbone": BACKBONES[backbone], "num_classes": fixture["num_classes"], "pretrained": False,
              "variant": "ijcv" if variant == "wsss" else variant, "alpha": 1.0, "beta": 1.0}
    if variant == "wsss":
        kwargs.update(WSSS_ARGS)
    kwargs.update(overrides)
    return BAS(**kwargs).double()


def load_official(module: BAS, fixture: dict) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Rebuild the official state dict from the fixture, convert it and load it (strict).

    Returns:
        The official state dict and the converted one (kept to reset the running statistics later).

    """
    official = seeded_state_dict(fixture["key_shapes"], fixture["weight_seed"])
    converted = {k: v.clone() for k, v in convert_official_state_dict(official, module).items()}
    module.load_state_dict(converted, strict=True)
    return official, converted


def check_cell(cell: str, **overrides) -> dict[str, float]:
    """Run one parity cell; raises AssertionError naming the first quantity that differs.

    Returns:
        The largest relative difference (``max|ours - official| / max|official|``) of each quantity.

    """
    worst: dict[str, float] = {}

    def compare(ours: torch.Tensor, theirs: torch.Tensor, name: str) -> None:
        assert_matches(ours, theirs, RTOL, name)
        theirs = torch.as_tensor(theirs, dtype=torch.float64)
        diff = (torch.as_tensor(ours).detach().to(torch.float64) - theirs).abs().max()
        worst[name.removeprefix(cell + " ")] = float(diff / theirs.abs().max().clamp_min(1e-300))

    fixture = load_fixture(FIXTURES / f"{cell}.pt")
    module = build_library(cell, fixture, **overrides)
    official, converted = load_official(module, fixture)
    size = fixture["image_size"]
    images = seeded_inputs((fixture["batch"], 3, size, size), fixture["input_seed"])
    batch = {"image": images, "label": fixture["label"]}
    if "multi_hot" in fixture:
        batch["multi_hot"] = fixture["multi_hot"]
    module.train()
    terms = module.training_losses(batch)
    expected = fixture["losses"]
    for ours, theirs in (("loss_cls", "cls"), ("loss_frg", "frg"), ("loss_bas", "bas"), ("loss_ac", "ac")):
        compare(terms[ours], expected[theirs], f"{cell} {theirs} loss")
    total = terms["loss_cls"] + fixture["alpha"] * terms["loss_frg"] + terms["loss_bas"] \
        + fixture["beta"] * terms["loss_ac"]
    compare(total, expected["total"], f"{cell} total loss")
    total.backward()
    key_map = official_key_map(official, module)
    params = dict(module.named_parameters())
    grads = {name: params[key_map[name]].grad for name in fixture["grad_names"]}
    assert all(g is not None for g in grads.values()), f"{cell}: parameters without gradient"
    norms = torch.stack([grads[name].norm() for name in fixture["grad_names"]])
    compare(norms, fixture["grad_norms"], f"{cell} gradient norms")
    for name, value in fixture["grad_slices"].items():
        compare(grads[name].flatten()[: value.numel()], value, f"{cell} gradient of {name}")
    module.load_state_dict(converted, strict=True)  # fresh running statistics, as the official test forward
    module.eval()
    with torch.no_grad():
        if "seed_map" in fixture:
            pair = torch.stack([images[0], images[0].flip(-1)])
            fpm = module.class_maps(pair)
            compare(fpm[0] + fpm[1].flip(-1), fixture["seed_map"], f"{cell} seed map")
            return worst
        outputs = module(images)
        compare(outputs["logits"], fixture["eval_logits"], f"{cell} eval logits")
        for key in sorted(k for k in fixture if k.startswith("map_top")):
            module.hparams.top_k = int(key.removeprefix("map_top"))
            maps = module.localization_maps(outputs, fixture["label"])
            compare(maps, fixture[key], f"{cell} test map {key}")
    return worst


@pytest.mark.parametrize("cell", CELLS)
def test_bas_matches_the_official_code(cell: str) -> None:
    check_cell(cell)


def test_timm_relu6_mobilenet_is_caught() -> None:
    """Deviation 3 of issue 12 reintroduced (timm's ReLU6 instead of the official ReLU) fails the cell."""
    with pytest.raises(AssertionError, match="cvpr_mobilenetv1"):
        check_cell("cvpr_mobilenetv1", backbone_act="relu6")


def test_fixtures_stay_small() -> None:
    sizes = {p.name: p.stat().st_size for p in FIXTURES.glob("*.pt")}
    assert sorted(sizes) == sorted([f"{c}.pt" for c in CELLS] + ["ilsvrc_key_lists.pt"])
    assert sum(sizes.values()) < 1.5 * 2**20, sizes
