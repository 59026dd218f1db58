"""Golden parity of ORNet with the official code (Sierkinhane/ORNet), from committed fixtures.

The fixtures hold numbers the official code produced (``tools/parity/ornet.py``) with weights drawn by
``seeded_state_dict`` over the official key/shape lists. Each test rebuilds the official-format state
dict, converts it with ``methods/ornet/official.py``, loads it into :class:`ORNet` and requires the same
numbers (float64, relative 1e-10). The stage-1 training script is not released, so only the stage-1
network's outputs are compared, not a stage-1 loss.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from wsol_lightning.methods import ORNet
from wsol_lightning.methods.official import OfficialCheckpointError
from wsol_lightning.methods.ornet.erasing import ErasingUniforms, attentive_erase, draw_uniforms
from wsol_lightning.methods.ornet.official import convert_official_state_dict, official_kind, official_renamer
from wsol_lightning.testing import assert_matches, load_fixture, seeded_inputs, seeded_state_dict

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity" / "ornet"
RTOL = 1e-10


def fixture(name: str) -> dict:
    return load_fixture(FIXTURES / f"{name}.pt")


def official_file(fx: dict) -> dict:
    """The official-format checkpoint, as the released scripts save it."""
    return {"state_dict": seeded_state_dict(fx["key_shapes"], fx["seed"]), "best_threshold": 0.5}


def build(phase: str, **kwargs: object) -> ORNet:
    args = {"init_from": "coarse.pth", "evaluator_from": "evaluator.pth"} if phase == "refine" else {}
    backbone = "vgg16" if phase == "evaluator" else "resnet50"
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # built in float64 directly: no float32 copy of VGG16 in memory
    try:
        return ORNet(phase=phase, backbone=backbone, num_classes=200, **args, **kwargs).double()
    finally:
        torch.set_default_dtype(default)


def load_official(module: ORNet, official: dict) -> ORNet:
    converted = convert_official_state_dict(official, module)
    module.load_state_dict(converted, strict=True, assign=True)
    return module


def uniforms(stored: dict, batch: int, size: int) -> ErasingUniforms:
    u = draw_uniforms(batch, size, size, generator=torch.Generator().manual_seed(int(stored["seed"])),
                      dtype=torch.float64)
    return u._replace(alpha=stored["alpha"], coin=stored["coin"])


def test_attentive_erasing_equals_the_release_on_many_maps():
    calls = fixture("erasing")["calls"]
    erased = total = 0
    for index, call in enumerate(calls):
        maps = call["maps"].double()
        batch, size = maps.shape[0], maps.shape[-1]
        out = attentive_erase(maps, uniforms=uniforms(call["uniforms"], batch, size))
        official = np.unpackbits(call["region"].numpy(), axis=-1, count=size).astype(bool)
        region = out.region.numpy()
        assert (region == official).all(), (
            f"call {index}: erase set differs on {int((region != official).sum())} pixels "
            f"(library {int(region.sum())}, release {int(official.sum())} pixels)")
        assert torch.equal(out.region.sum(dim=(1, 2)), call["region_count"])
        assert_matches(out.maps.sum(dim=(1, 2, 3)), call["out_sum"], RTOL, f"call {index}: erased map sums")
        assert_matches((out.maps**2).sum(dim=(1, 2, 3)), call["out_sq"], RTOL, f"call {index}: squares")
        erased += int(out.erased.sum())
        total += batch
    assert total >= 150 and 0.2 * total < erased < total  # the fixture exercises erasing and its skips


def test_stage1_coarse_network_matches_the_release():
    fx = fixture("coarse")
    module = load_official(build("coarse"), official_file(fx)).eval()
    images = seeded_inputs((2, 3, 224, 224), fx["input_seed"])[: fx["images"]]
    with torch.no_grad():
        out = module(images)
    assert_matches(out["aux_logits"], fx["sx"], RTOL, "coarse: att-branch logits (sx)")
    assert_matches(out["logits"], fx["mx"], RTOL, "coarse: main-path logits (mx)")
    assert_matches(out["map"], fx["att"], RTOL, "coarse: map p (att)")
    state = official_file(fx)["state_dict"]
    with pytest.raises(OfficialCheckpointError, match=r"no place in the module: \['not_released\.weight"):
        convert_official_state_dict({**state, "not_released.weight": torch.zeros(1)}, module)
    del state["att_conv3.weight"]
    with pytest.raises(OfficialCheckpointError, match=r"does not fill: \['net\.map_head\.conv\.weight'\]"):
        convert_official_state_dict(state, module)


def test_stage1_file_loads_into_refine_without_its_classification_path():
    fx = fixture("coarse")  # also wrapped under "model" with DataParallel's "module." prefixes
    wrapped = {"model": {f"module.{k}": v for k, v in official_file(fx)["state_dict"].items()}}
    module = load_official(build("refine", evaluator_backbone="resnet18"), wrapped).eval()
    images = seeded_inputs((2, 3, 224, 224), fx["input_seed"])[: fx["images"]]
    with torch.no_grad():
        assert_matches(module.net(images)["map"], fx["att"], RTOL, "refine from the stage-1 file: map p")


def test_evaluator_matches_the_release():
    fx = fixture("evaluator")
    module = load_official(build("evaluator"), official_file(fx)).eval()
    images = seeded_inputs((2, 3, 224, 224), fx["input_seed"])[: fx["images"]]
    with torch.no_grad():
        assert_matches(module(images)["logits"], fx["logits"], RTOL, "evaluator: eval-mode logits")
    state = official_file(fx)["state_dict"]
    with pytest.raises(OfficialCheckpointError, match=r"no place in the module: \['vgg_extra\.weight"):
        convert_official_state_dict({**state, "vgg_extra.weight": torch.zeros(1)}, module)


@pytest.mark.slow
def test_stage2_losses_gradients_and_batchnorm_drift_match_the_release():
    fx = fixture("refine")
    module = load_official(build("refine", frozen_train_mode=True), official_file(fx)).train()
    images = seeded_inputs((2, 3, 224, 224), fx["input_seed"])
    u = uniforms(fx["uniforms"], 2, 56)
    captured: dict = {}
    module.net.register_forward_hook(lambda m, i, o: captured.update(maps=o["map"].detach()))
    torch.manual_seed(int(fx["dropout_seed"]))  # the evaluator's dropout draws as torchvision's, in order
    losses = module.refine_losses(images, fx["labels"], uniforms=u)
    official = fx["loss"]
    assert_matches(losses["loss_cls"], official["ce"], RTOL, "refine: cross-entropy")
    assert_matches(losses["loss_area"], 0.02 * official["area"], RTOL, "refine: area loss with class term")
    assert_matches(losses["loss_entropy"], 1.5 * official["entropy"], RTOL, "refine: weighted entropy")
    assert_matches(losses["loss"], official["total"], RTOL, "refine: total loss")
    losses["loss"].backward()
    rename = official_renamer(official_kind(dict(fx["key_shapes"])), "refine", module.state_dict())
    params = dict(module.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    assert trainable == {rename(k) for k in fx["grads"]}
    for key, ref in fx["grads"].items():
        grad = params[rename(key)].grad.reshape(-1)
        assert_matches(grad.norm(), ref["norm"], RTOL, f"refine: |grad| of {key}")
        assert_matches(grad[:: max(1, grad.numel() // 256)][:256], ref["samples"], RTOL, f"refine: grad of {key}")
    buffers = dict(module.named_buffers())
    for key, ref in fx["running_mean"].items():
        assert_matches(buffers[rename(f"{key}.running_mean")], ref, RTOL, f"refine: frozen BN drift {key}")
    assert_matches(captured["maps"], fx["att"], RTOL, "refine: map p")  # same map, erase set and drops
    out = attentive_erase(captured["maps"], uniforms=u)
    assert torch.equal(out.region, fx["region"]) and torch.equal(out.dropped, fx["dropped"])
    assert out.region.sum() > 1 and out.dropped.any()


def test_the_class_term_is_most_of_the_released_area_loss():
    """Why ``area_class_term`` must stay on: without it the area loss is a small part of the release's."""
    loss = fixture("refine")["loss"]
    assert abs(float(loss["area"] - loss["area_plain"])) > 0.5 * abs(float(loss["area"]))


@pytest.mark.parametrize("phase", ["evaluator", "coarse"])
def test_converter_refuses_a_file_of_another_phase(phase: str):
    other = "coarse" if phase == "evaluator" else "evaluator"
    module = ORNet(phase=phase, backbone="resnet18", num_classes=200)
    with pytest.raises(OfficialCheckpointError, match="cannot be loaded into an ORNet of phase"):
        convert_official_state_dict({"state_dict": dict.fromkeys(keys_of(other), torch.zeros(1))}, module)


def keys_of(kind: str) -> list[str]:
    return [key for key, _ in fixture(kind)["key_shapes"]]
