"""Shared check of a wsolevaluation-baseline parity cell (fixtures by ``tools/parity/wsoleval_methods.py``).

A cell rebuilds the reference's seeded state dict from the stored key/shape list and seed, converts it with the
method's ``official.convert_official_state_dict``, replays the stored draws through the method's ``losses`` and
requires in float64 (relative 1e-10) the loss, every parameter's gradient norm, gradient slices, the eval
logits and the raw test CAMs (on ResNet50/VGG16 the reference averages ``w_c * F`` over channels, the library
sums: maps are compared divided by the channel count; on InceptionV3 both read the 1x1 conv's output). A fixture
with a ``dropout_seed`` (the InceptionV3 CAM head) replays the reference's dropout masks through
:class:`SeededDropout`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from wsol_lightning.methods.base import WSOLModule
from wsol_lightning.methods.wsoleval_official import CAM_HEADS, wsoleval_key_map
from wsol_lightning.testing import SeededDropout, assert_matches, load_fixture, seeded_inputs, seeded_state_dict

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity"
RTOL = 1e-10
#: official key -> library key of the CAM-architecture networks (ResNet50 / VGG16 by order, InceptionV3 by name)
CAM_KEY_MAP = partial(wsoleval_key_map, heads=CAM_HEADS)


def check_cell(method: str, architecture: str, build: Callable[[dict[str, Any]], WSOLModule],
               step: Callable[[WSOLModule, torch.Tensor, torch.Tensor, dict[str, Any]], dict[str, torch.Tensor]],
               convert: Callable[..., dict[str, torch.Tensor]],
               key_map: Callable[..., dict[str, str]] = CAM_KEY_MAP,
               cams: Callable[[WSOLModule, dict[str, torch.Tensor], torch.Tensor], torch.Tensor] | None = None) -> None:
    """Compare one cell; raises AssertionError naming the first quantity that differs.

    Args:
        method: fixture folder (``has``, ``cutmix``, ``adl``).
        architecture: ``resnet50``, ``vgg16`` or ``inception_v3``.
        build: fixture -> the library module (float64).
        step: (module, images, labels, fixture) -> the loss terms, with the fixture's draws.
        convert: the method's ``convert_official_state_dict``.
        key_map: (official state dict, module state dict) -> {official key: module key}, for the gradients.
        cams: (module, eval outputs, labels) -> maps in the reference's scale (default: the CAM, divided by
            the channel count on ResNet50/VGG16).

    """
    fixture = load_fixture(FIXTURES / method / f"{architecture}.pt")
    cell = fixture["cell"]
    module = build(fixture).double()
    official = seeded_state_dict(fixture["key_shapes"], fixture["weight_seed"])
    converted = {k: v.clone() for k, v in convert(official, module).items()}
    module.load_state_dict(converted, strict=True)
    size = fixture["image_size"]
    images = seeded_inputs((fixture["batch"], 3, size, size), fixture["input_seed"])
    labels = fixture["label"]
    module.train()
    if "dropout_seed" in fixture:
        SeededDropout(fixture["dropout_seed"]).patch(module)
    terms = step(module, images, labels, fixture)
    assert_matches(terms["loss"], fixture["loss"], RTOL, f"{cell} loss")
    terms["loss"].backward()
    names = key_map(official, module.state_dict())
    params = dict(module.named_parameters())
    grads = {name: params[names[name]].grad for name in fixture["grad_names"]}
    assert all(g is not None for g in grads.values()), f"{cell}: parameters without gradient"
    with_grad = sum(p.grad is not None for p in params.values())
    assert with_grad == len(fixture["grad_names"]), f"{cell}: {with_grad} parameters with gradient, official " \
                                                    f"{len(fixture['grad_names'])}"
    norms = torch.stack([grads[name].norm() for name in fixture["grad_names"]])
    assert_matches(norms, fixture["grad_norms"], RTOL, f"{cell} gradient norms")
    assert fixture["grad_slices"], f"{cell}: no gradient slice stored"
    for name, value in fixture["grad_slices"].items():
        assert_matches(grads[name].flatten()[: value.numel()], value, RTOL, f"{cell} gradient of {name}")
    module.load_state_dict(converted, strict=True)  # fresh running statistics, as the reference's test forward
    module.eval()
    with torch.no_grad():
        outputs = module(images)
        assert_matches(outputs["logits"], fixture["eval_logits"], RTOL, f"{cell} eval logits")
        if cams is None:
            scale = 1 if fixture["architecture"] == "inception_v3" else outputs["features"].shape[1]
            maps = module.localization_maps(outputs, labels) / scale
        else:
            maps = cams(module, outputs, labels)
        assert_matches(maps, fixture["cams"], RTOL, f"{cell} test CAMs")


def step_with_terms(module: WSOLModule, images: torch.Tensor, labels: torch.Tensor,
                    fixture: dict[str, Any]) -> dict[str, torch.Tensor]:
    """A ``step`` for methods whose fixture stores each loss term (ACoL, SPG): every term is required too."""
    terms = module.training_losses({"image": images, "label": labels})
    for name, value in fixture["terms"].items():
        assert_matches(terms[name], value, RTOL, f"{fixture['cell']} {name}")
    return terms


def cams_with_other_classes(fixture: dict[str, Any]) -> Callable[..., torch.Tensor]:
    """A ``cams`` readout that also requires the maps of the fixture's ``other_classes`` (ACoL, SPG)."""

    def read(module: WSOLModule, outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        other = module.localization_maps(outputs, fixture["other_classes"])
        assert_matches(other, fixture["cams_other"], RTOL, f"{fixture['cell']} test CAMs of other classes")
        return module.localization_maps(outputs, labels)

    return read
