"""Shared check of one wsolevaluation parity cell (ACoL, SPG): fixtures of ``tools/parity/acol_spg.py``.

The cell rebuilds the official-format state dict from the stored key/shape list and seed, converts it with
the method's ``convert_official_state_dict``, loads it into the library module (float64) and requires the
official numbers at ``RTOL``: each loss term and the total, the gradient norm of every
official top-level module and a few gradient slices, the eval logits and the raw test CAMs (for the labels
and for other classes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from wsol_lightning.methods import WSOLModule
from wsol_lightning.methods.wsoleval_official import wsoleval_key_map
from wsol_lightning.testing import assert_matches, seeded_inputs, seeded_state_dict

RTOL = 1e-10


def check_cell(fx: dict[str, Any], module: WSOLModule, convert: Callable[..., dict[str, torch.Tensor]],
               heads: Mapping[str, str], aliases: Any = ()) -> None:
    """Load the fixture's official weights into ``module`` and compare every stored number."""
    name = f"{fx['method']}/{fx['backbone']}"
    official = seeded_state_dict(fx["key_shapes"], fx["weight_seed"])
    module.double()  # before converting: the converter casts to the module's dtype
    module.load_state_dict(convert(official, module), strict=True)
    module.train()
    images = seeded_inputs(fx["input_shape"], fx["input_seed"])
    batch = {"image": images, "label": fx["labels"]}
    losses = module.training_losses(batch)  # one train forward, as the official run (BN running statistics)
    for term, value in fx["terms"].items():
        assert_matches(losses[term], value, RTOL, f"{name} {term}")
    assert_matches(losses["loss"], fx["loss"], RTOL, f"{name} loss")
    losses["loss"].backward()
    params = dict(module.named_parameters())
    keys = wsoleval_key_map(module, [k for k, _ in fx["key_shapes"]], heads, aliases)
    norms: dict[str, float] = {}
    for official_key, library_key in keys.items():
        grad = params[library_key].grad if library_key in params else None
        if grad is not None:
            group = official_key.split(".")[0]
            norms[group] = norms.get(group, 0.0) + float(grad.pow(2).sum())
    assert set(norms) == set(fx["grad_norms"]), f"{name}: gradient groups {sorted(norms)}"
    for group, value in fx["grad_norms"].items():
        assert_matches(norms[group] ** 0.5, value, RTOL, f"{name} grad norm {group}")
    for official_key, values in fx["grad_slices"].items():
        grad = params[keys[official_key]].grad.flatten()[: values.numel()]
        assert_matches(grad, values, RTOL, f"{name} grad slice {official_key}")
    module.eval()
    with torch.no_grad():
        outputs = module(images)
        assert_matches(outputs["logits"], fx["eval_logits"], RTOL, f"{name} eval logits")
        for classes, cams in ((fx["labels"], fx["cams"]), (fx["other_classes"], fx["cams_other"])):
            assert_matches(module.localization_maps(outputs, classes), cams, RTOL, f"{name} test CAMs {classes}")
