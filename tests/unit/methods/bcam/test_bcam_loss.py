"""B-CAM's stagger loss pinned on hand-computed tensors."""

from __future__ import annotations

import math

import pytest
import torch

from wsol_lightning.methods.bcam.loss import TERM_NAMES, multilabel_soft_margin, stagger_loss, stagger_targets
from wsol_lightning.methods.bcam.module import official_loss_weights

LN2, LN3, LN43 = math.log(2), math.log(3), math.log(4 / 3)


def test_multilabel_soft_margin_by_hand():
    # sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4: -(log 1/2 + log 1/4) / 2 = 1.5 ln 2
    value = multilabel_soft_margin(torch.tensor([[0.0, LN3]]), torch.tensor([[1.0, 0.0]]))
    assert value.item() == pytest.approx(1.5 * LN2)
    # batch mean: a second row with loss -(log 3/4 + log 1/2) / 2
    logits = torch.tensor([[0.0, LN3], [LN3, 0.0]])
    value = multilabel_soft_margin(logits, torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    assert value.item() == pytest.approx((1.5 * LN2 + (LN43 + LN2) / 2) / 2)


def test_single_label_targets():
    targets = stagger_targets(torch.tensor([2, 0]), 3)
    assert torch.equal(targets["obj_cls"], torch.tensor([2, 0]))
    assert torch.equal(targets["bg_on_obj"], torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]))
    assert torch.equal(targets["bg_on_bg"], torch.ones(2, 3))
    assert torch.equal(targets["obj_on_bg"], torch.zeros(2, 3))


def test_multi_label_targets():
    multi_hot = torch.tensor([[1.0, 0.0, 1.0]])
    targets = stagger_targets(torch.tensor([0]), 3, multi_hot)
    assert torch.equal(targets["obj_cls"], multi_hot)
    assert torch.equal(targets["bg_on_obj"], torch.tensor([[0.0, 1.0, 0.0]]))
    assert torch.equal(targets["bg_on_bg"], torch.ones(1, 3))
    assert torch.equal(targets["obj_on_bg"], torch.zeros(1, 3))


def hand_case() -> tuple[torch.Tensor, ...]:
    return (
        torch.tensor([[0.0, 0.0]]),  # W_o f_o, label 0: CE = ln 2
        torch.tensor([[0.0, LN3]]),  # W_b f~_o, target (0, 1): -(log 1/2 + log 3/4)/2
        torch.tensor([[LN3, LN3]]),  # W_b f~_b, target (1, 1): -log 3/4
        torch.tensor([[LN3, 0.0]]),  # W_o f_b, target (0, 0): -(log 1/4 + log 1/2)/2
    )


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (1.0, 0.4, 0.4, 0.2), (0.0, 2.0, 0.5, 3.0)])
def test_stagger_terms_by_hand(weights):
    raw = (LN2, (LN2 + LN43) / 2, LN43, 1.5 * LN2)
    terms = stagger_loss(*hand_case(), torch.tensor([0]), weights)
    for name, w, value in zip(TERM_NAMES, weights, raw, strict=True):
        assert terms[name].item() == pytest.approx(w * value, abs=1e-6), name
    total = sum(w * v for w, v in zip(weights, raw, strict=True))
    assert terms["loss"].item() == pytest.approx(total, abs=1e-6)
    assert set(terms) == {*TERM_NAMES, "loss"}


def test_term_targets_follow_the_label():
    # label 1 instead of 0: CE still ln 2 (equal logits); bg_on_obj target becomes (1, 0)
    terms = stagger_loss(*hand_case(), torch.tensor([1]))
    assert terms["loss_obj_cls"].item() == pytest.approx(LN2)
    # W_b f~_o = (0, ln 3) against (1, 0): -(log 1/2 + log 1/4) / 2
    assert terms["loss_bg_on_obj"].item() == pytest.approx(1.5 * LN2)


def test_multi_label_variant_uses_soft_margin_for_the_object_term():
    multi_hot = torch.tensor([[1.0, 1.0]])
    terms = stagger_loss(*hand_case(), torch.tensor([0]), multi_hot=multi_hot)
    # W_o f_o = (0, 0) against (1, 1): -log 1/2
    assert terms["loss_obj_cls"].item() == pytest.approx(LN2)
    # W_b f~_o = (0, ln 3) against 1 - y = (0, 0): -(log 1/2 + log 1/4) / 2
    assert terms["loss_bg_on_obj"].item() == pytest.approx(1.5 * LN2)


def test_weights_must_be_four():
    with pytest.raises(ValueError, match="four weights"):
        stagger_loss(*hand_case(), torch.tensor([0]), (1.0, 1.0))


def test_official_weights_per_backbone():
    assert official_loss_weights("resnet50") == (1.0, 1.0, 1.0, 1.0)
    assert official_loss_weights("vgg16") == (1.0, 0.4, 0.4, 0.2)
    assert official_loss_weights("inception_v3") == (1.0, 0.4, 0.4, 0.2)
    assert official_loss_weights("mobilenetv1_100") == (1.0, 1.0, 1.0, 1.0)
