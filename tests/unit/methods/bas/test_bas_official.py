"""The official-checkpoint converter on every released BAS format, and the paper's MobileNetV1 file.

Key/shape lists come from the golden parity fixtures (written by ``tools/parity/bas.py`` from the
official models); values are drawn with :func:`seeded_state_dict`. Equality of logits and maps after
conversion is the parity suite itself (``tests/parity/test_bas_parity.py``).
"""

from pathlib import Path

import pytest
import torch
from torch import nn

from wsol_lightning.methods import BAS
from wsol_lightning.methods.bas.official import convert_official_state_dict, official_key_map
from wsol_lightning.methods.official import OfficialCheckpointError
from wsol_lightning.testing import load_fixture, seeded_state_dict

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "parity" / "bas"
TIMM = {"resnet50": "resnet50", "inception_v3": "inception_v3", "mobilenetv1": "mobilenetv1_100"}


def official_state(cell: str, dtype=torch.float32) -> dict[str, torch.Tensor]:
    fixture = load_fixture(FIXTURES / f"{cell}.pt")
    return seeded_state_dict(fixture["key_shapes"], fixture["weight_seed"], dtype=dtype)


@pytest.fixture(scope="module")
def resnet_cvpr():
    return BAS(backbone="resnet50", num_classes=200, variant="cvpr")


@pytest.mark.parametrize("backbone", ["resnet50", "inception_v3", "mobilenetv1"])
def test_ilsvrc_format_with_frozen_copies_and_dataparallel_prefix(backbone):
    """CVPR ILSVRC checkpoints: ``module.`` keys and persistent frozen copies (key lists of the official models)."""
    lists = load_fixture(FIXTURES / "ilsvrc_key_lists.pt")
    official = seeded_state_dict(lists["key_shapes"][backbone], lists["weight_seed"], dtype=torch.float32)
    module = BAS(backbone=TIMM[backbone], num_classes=1000, variant="cvpr")
    converted = convert_official_state_dict({"module." + k: v for k, v in official.items()}, module)
    assert converted.keys() == module.state_dict().keys()
    mapping = official_key_map(official, module)
    dropped = sorted({k.split(".")[0] for k, v in mapping.items() if v is None})
    assert dropped and all(name.endswith("_copy") or name == "erase_branch" for name in dropped)
    used = {k: v for k, v in mapping.items() if v is not None}
    assert all(torch.equal(converted[v], official[k]) for k, v in used.items())
    assert torch.equal(converted["net.generator.weight"], official["classifier_loc.0.weight"])
    assert torch.equal(converted["net.tail.classifier.4.bias"], official["classifier_cls.4.bias"])


def test_ijcv_checkpoint_dict_and_old_files_without_batch_counters():
    official = {k: v for k, v in official_state("ijcv_mobilenetv1").items() if not k.endswith("tracked")}
    module = BAS(backbone="mobilenetv1_100", num_classes=200, variant="ijcv")
    converted = convert_official_state_dict({"model": official, "epoch": 7}, module)
    mapping = official_key_map(official, module)
    assert mapping["model.0.0.weight"] == "net.extractor.0.conv_stem.weight"
    assert mapping["model.13.4.running_var"].endswith("blocks_4.1.bn2.running_var")
    assert all(torch.equal(converted[mapping[k]], v) for k, v in official.items())


def test_wrong_class_count_or_backbone_is_named(resnet_cvpr):
    official = official_state("cvpr_mobilenetv1")
    with pytest.raises(OfficialCheckpointError, match=r"shape mismatches.*classifier_loc\.0\.weight"):
        convert_official_state_dict(official, BAS(backbone="mobilenetv1_100", num_classes=10, variant="cvpr"))
    with pytest.raises(OfficialCheckpointError, match="another backbone"):
        convert_official_state_dict(official, resnet_cvpr)


def test_unknown_key_and_wsss_biases_are_named(resnet_cvpr):
    official = official_state("cvpr_resnet50")
    with pytest.raises(OfficialCheckpointError, match="fc.weight"):
        convert_official_state_dict({**official, "fc.weight": torch.zeros(3)}, resnet_cvpr)
    wsss = official_state("wsss_resnet50")
    module = BAS(backbone="resnet50", num_classes=20, variant="ijcv", head_convs=0, stride_one_taps=[4],
                 pool_between="none")
    with pytest.raises(OfficialCheckpointError, match="head_bias=False"):
        convert_official_state_dict(wsss, module)


def test_paper_mobilenet_file_loads_by_position_with_relu(tmp_path):
    """The format of mobilenet_v1_with_relu_69_5.pth: ``model.<i>.<j>`` keys, an ImageNet ``fc``, no counters."""
    trunk = {k: v for k, v in official_state("cvpr_mobilenetv1").items()
             if k.startswith("model.") and not k.endswith("tracked")}
    gen = torch.Generator().manual_seed(0)
    paper = {**trunk, "fc.weight": torch.randn(1000, 1024, generator=gen), "fc.bias": torch.zeros(1000)}
    path = tmp_path / "mobilenet_v1_with_relu_69_5.pth"
    torch.save(paper, path)
    with pytest.warns(UserWarning, match="by position"):
        module = BAS(backbone="mobilenetv1_100", num_classes=200, pretrained=str(path))
    state = module.state_dict()
    mapping = official_key_map(official_state("cvpr_mobilenetv1"), module)
    assert len(trunk) == 135
    assert all(torch.equal(state[mapping[k]], v) for k, v in trunk.items())
    activations = {type(m) for m in module.net.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))}
    assert activations == {nn.ReLU}
    relu6 = BAS(backbone="mobilenetv1_100", num_classes=200, backbone_act="relu6")
    assert any(isinstance(m, nn.ReLU6) for m in relu6.net.modules())


def test_file_matching_neither_by_name_nor_by_position_is_an_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"a.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(RuntimeError, match="nor by position|by position either"):
        BAS(backbone="mobilenetv1_100", num_classes=200, pretrained=str(path))


def test_timm_weights_with_the_official_relu_warn():
    """timm's mobilenetv1_100 weights were trained with ReLU6: running them with ReLU is said out loud."""
    with pytest.warns(UserWarning, match="official network"):
        try:
            BAS(backbone="mobilenetv1_100", num_classes=3, pretrained=True)
        except RuntimeError as error:  # offline here: the hub cannot be reached
            assert "pretrained" in str(error)
