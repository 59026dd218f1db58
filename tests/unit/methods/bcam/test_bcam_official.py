"""Converter from the official B-CAM checkpoint formats: wrappers, aliases, old key spellings, strict errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from wsol_lightning.methods import BCAM
from wsol_lightning.methods.bcam.official import convert_official_state_dict
from wsol_lightning.methods.official import OfficialCheckpointError
from wsol_lightning.testing import load_fixture, seeded_state_dict

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "parity" / "bcam"


@pytest.fixture(scope="module")
def resnet() -> tuple[BCAM, dict[str, torch.Tensor]]:
    fx = load_fixture(FIXTURES / "resnet50_zero_init.pt")
    official = seeded_state_dict(fx["key_shapes"], fx["weight_seed"], dtype=torch.float32)
    return BCAM(backbone="resnet50", num_classes=fx["num_classes"], num_heads=fx["num_heads"]), official


def test_main_py_checkpoint_with_old_extractor_names_and_dataparallel_prefix(resnet):
    module, official = resnet
    renamed = {("module." + k.replace("aggregator_", "extractor_")): v for k, v in official.items()}
    converted = convert_official_state_dict({"state_dict": renamed, "epoch": 20}, module)
    assert list(converted) == list(module.state_dict())
    assert torch.equal(converted["net.head.aggregator_obj.weight"], official["aggregator_A.weight"])
    assert torch.equal(converted["net.head.classifier_bg.bias"], official["classifier_B.bias"])
    assert torch.equal(converted["net.trunk.stages.4.layer4.2.conv3.weight"], official["layer4.2.conv3.weight"])
    module.load_state_dict(converted, strict=True)


def test_strict_errors_name_the_keys(resnet):
    module, official = resnet
    with pytest.raises(OfficialCheckpointError, match="fc.weight"):
        convert_official_state_dict({**official, "fc.weight": torch.zeros(3, 3)}, module)
    with pytest.raises(OfficialCheckpointError, match="net.head.classifier_obj.weight"):
        convert_official_state_dict({k: v for k, v in official.items() if k != "classifier_A.weight"}, module)
    wrong = dict(official, **{"classifier_A.bias": torch.zeros(7)})
    with pytest.raises(OfficialCheckpointError, match=r"classifier_A.bias \(7,\)"):
        convert_official_state_dict(wrong, module)


def test_voc_checkpoint_with_its_aliases():
    fx = load_fixture(FIXTURES / "voc.pt")
    official = seeded_state_dict(fx["key_shapes"], fx["weight_seed"], dtype=torch.float32)
    # what train_bcam.py writes: the same tensors again under stage1-4 / backbone / newly_added
    full = dict(official)
    full["stage1.0.weight"] = official["resnet50.conv1.weight"]
    full["backbone.3.0.layer4.0.conv1.weight"] = official["resnet50.layer4.0.conv1.weight"]
    full["newly_added.0.weight"] = official["fc8_fore.weight"]
    module = BCAM(backbone="resnet50", num_classes=20, num_heads=20, aggregator_bias=False, classifier_bias=False,
                  stride_one_taps=[4], multi_label=True)
    converted = convert_official_state_dict(full, module)
    assert torch.equal(converted["net.head.aggregator_bg.weight"], official["fc_attp_back.weight"])
    assert torch.equal(converted["net.head.classifier_obj.weight"], official["fc8_fore.weight"])
    module.load_state_dict(converted, strict=True)
    with pytest.raises(OfficialCheckpointError, match="classifier_obj.bias"):  # built with the WSOL head
        convert_official_state_dict(full, BCAM(backbone="resnet50", num_classes=20, num_heads=20,
                                               stride_one_taps=[4]))


def test_a_main_py_file_loads_through_the_generic_converter(resnet, tmp_path):
    """``wsol convert``'s loader finds this converter and reads the file main.py writes."""
    from wsol_lightning.convert import load_official_checkpoint

    module, official = resnet
    path = tmp_path / "last_checkpoint.pth.tar"
    sgd = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, momentum=0.9)
    torch.save({"architecture": "resnet50", "epoch": 20, "state_dict": official, "optimizer": sgd.state_dict()},
               path)
    load_official_checkpoint(path, module)
    state = module.state_dict()
    assert torch.equal(state["net.head.aggregator_bg.weight"], official["aggregator_B.weight"])
    assert torch.equal(state["net.trunk.stages.0.conv1.weight"], official["conv1.weight"])
