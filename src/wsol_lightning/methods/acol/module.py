"""ACoL as a LightningModule."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor, nn

from wsol_lightning.methods.acol.loss import acol_losses
from wsol_lightning.methods.acol.model import ACoLNet
from wsol_lightning.methods.base import WSOLModule
from wsol_lightning.methods.wsoleval import HeadInit, LRGroups, check_lr_groups
from wsol_lightning.types import WSOLBatch


class ACoL(WSOLModule):
    """Adversarial Complementary Learning (Zhang et al., CVPR 2018), as wsolevaluation re-implements it.

    Args:
        backbone: timm model name (``resnet50``, ``vgg16``, ``inception_v3``: the reference's cuts).
        num_classes: number of classes.
        pretrained: ``False``, ``True`` or a local weights file.
        erase_threshold: the reference's ``acol_threshold``: features where the normalised map A of the
            label reaches it are erased before classifier B (reference default 0.7).
        large_feature_map: the reference's ``large_feature_map`` (28x28 maps at 224 instead of 14x14).
        head_width: hidden channels of both classifiers (reference: 1024).
        head_init: initialisation of the classifiers; ``None`` = the reference's (ResNet ``he``, else ``xavier``).
        lr_groups: ``"official"``: the parameters the reference trains at ``head_lr_mult`` (ResNet: layer4
            only, its new classifiers at the base lr; VGG16/InceptionV3: the classifiers); ``"new_layers"``:
            the two classifiers, whatever the backbone.
        **kwargs: optimisation and evaluation arguments of :class:`WSOLModule`.

    """

    def __init__(self, backbone: str = "resnet50", num_classes: int = 200, pretrained: bool | str = False,
                 erase_threshold: float = 0.7, large_feature_map: bool = False, head_width: int = 1024,
                 head_init: HeadInit | None = None, lr_groups: LRGroups = "official", **kwargs: Any) -> None:
        super().__init__(backbone=backbone, num_classes=num_classes, pretrained=pretrained, **kwargs)
        check_lr_groups(lr_groups)
        self.erase_threshold = float(erase_threshold)
        self.net = ACoLNet(backbone, num_classes, pretrained, large_feature_map=large_feature_map,
                           head_width=head_width, head_init=head_init)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Return ``features``, classifier A's ``maps_a`` and ``logits`` (classifier A's, as the reference's)."""
        return self.net(images)

    def training_losses(self, batch: WSOLBatch) -> dict[str, Tensor]:
        """Cross-entropy of classifier A and of classifier B on the features erased by the label's map A."""
        outputs = self(batch["image"])
        maps_b = self.net.erased_maps(outputs, batch["label"], self.erase_threshold)
        return acol_losses(outputs["maps_a"], maps_b, batch["label"])

    def localization_maps(self, outputs: dict[str, Tensor], classes: Tensor) -> Tensor:
        """``max(norm(M_A[c]), norm(M_B[c]))`` with the erasing driven by ``classes``."""
        return self.net.class_maps(outputs, classes, self.erase_threshold)

    def head_modules(self) -> Iterable[nn.Module]:
        """The modules trained at ``head_lr_mult`` (see ``lr_groups``)."""
        if self.hparams.lr_groups == "official" and self.net.family == "resnet":
            return (self.net.trunk.stages[-1],)
        return tuple(self.net.new_layers())
