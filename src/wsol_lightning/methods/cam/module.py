"""CAM as a LightningModule."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor, nn

from wsol_lightning.methods.base import WSOLModule
from wsol_lightning.methods.cam.loss import classification_loss
from wsol_lightning.methods.cam.model import CAMNet
from wsol_lightning.methods.cam.timm_head import TimmCAMNet, preprocess_image, timm_num_classes
from wsol_lightning.methods.wsoleval import LRGroups, backbone_family, check_lr_groups
from wsol_lightning.types import WSOLBatch


class CAM(WSOLModule):
    """Class activation mapping on a timm trunk (the wsolevaluation baseline).

    Args:
        backbone: timm model name.
        num_classes: number of classes.
        pretrained: ``False``, ``True`` or a local weights file.
        label_smoothing: label smoothing of the cross-entropy.
        timm_head: ``True`` keeps the whole timm classifier and makes the maps from its own head (global
            average pooling + linear): with timm's class count and weights its logits are timm's and maps
            come without training (see :meth:`from_timm`). ``False`` (default): the wsolevaluation CAM trunk
            (stride surgery, a new head).
        lr_groups: which parameters train at ``head_lr_mult``. ``"official"`` (default) follows wsolevaluation's
            ``main.py`` (``_FEATURE_PARAM_LAYER_PATTERNS``): on a ResNet, ``layer4`` and the classifier; on
            VGG16/InceptionV3, every layer outside the pretrained features (the extra conv and the classifier).
            ``"new_layers"``: the extra conv and the classifier, whatever the backbone. (On InceptionV3 the
            two coincide: ``Mixed*`` and ``Conv2d_*`` at the base lr, the head and the 1x1 classifier at x10.)
        large_feature_map: the reference's ``--large_feature_map`` (28x28 maps at 224 instead of 14x14 on
            ResNet50, VGG16 and InceptionV3; see :class:`CAMNet`).
        head_dropout: dropout of the InceptionV3 head (``InceptionCam``: 0.5); unused on other backbones.
        **kwargs: optimisation and evaluation arguments of :class:`WSOLModule`.

    """

    def __init__(self, backbone: str = "resnet50", num_classes: int = 200, pretrained: bool | str = False,
                 label_smoothing: float = 0.0, timm_head: bool = False, lr_groups: LRGroups = "official",
                 large_feature_map: bool = False, head_dropout: float = 0.5, **kwargs: Any) -> None:
        super().__init__(backbone=backbone, num_classes=num_classes, pretrained=pretrained, **kwargs)
        check_lr_groups(lr_groups)
        self.net: CAMNet | TimmCAMNet
        if timm_head:
            self.net = TimmCAMNet(backbone, num_classes, pretrained)
            self._new_head = not pretrained or num_classes != timm_num_classes(backbone)
        else:
            self.net = CAMNet(backbone, num_classes, pretrained, large_feature_map=large_feature_map,
                              head_dropout=head_dropout)

    @classmethod
    def from_timm(cls, name: str, pretrained: bool | str = True, num_classes: int | None = None,
                  **kwargs: Any) -> CAM:
        """CAM on a pretrained timm classifier, reusing its own head: its logits are timm's, maps need no training.

        Args:
            name: timm model name whose head is global average pooling + linear (``resnet50``,
                ``efficientnet_b0``, ``convnext_tiny``, ...).
            pretrained: ``True`` (timm's weights, needs the hub once) or a local weights file of the full
                classifier (``torch.save(timm_model.state_dict(), path)``).
            num_classes: ``None`` keeps timm's head (e.g. the 1000 ImageNet classes); another count gives a
                new head to fine-tune.
            **kwargs: other arguments of :class:`CAM` / :class:`WSOLModule` (e.g. ``operating_threshold``).

        Example:
            >>> cam = CAM.from_timm("resnet50", pretrained=True).eval()  # doctest: +SKIP
            >>> maps = cam.predict_step({"image": images}, 0)["maps"]  # doctest: +SKIP

        """
        classes = timm_num_classes(name) if num_classes is None else num_classes
        return cls(backbone=name, num_classes=classes, pretrained=pretrained, timm_head=True, **kwargs)

    def preprocess(self, image: Any, size: int = 224) -> Tensor:
        """A PIL image (or ``(H, W, 3)`` uint8 array) -> the ``(1, 3, size, size)`` batch this model expects.

        Resized straight to ``size`` (no crop), normalised with the timm model's mean/std (ImageNet's otherwise).
        """
        if isinstance(self.net, TimmCAMNet):
            cfg = self.net.model.pretrained_cfg
            return preprocess_image(image, size, tuple(cfg["mean"]), tuple(cfg["std"])).to(self.device)
        return preprocess_image(image, size).to(self.device)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Return ``features`` and ``logits``."""
        return self.net(images)

    def training_losses(self, batch: WSOLBatch) -> dict[str, Tensor]:
        """Cross-entropy on the image label."""
        outputs = self(batch["image"])
        loss_cls = classification_loss(outputs["logits"], batch["label"], self.hparams.label_smoothing)
        return {"loss_cls": loss_cls, "loss": loss_cls}

    def localization_maps(self, outputs: dict[str, Tensor], classes: Tensor) -> Tensor:
        """CAMs of ``classes``."""
        return self.net.class_maps(outputs["features"], classes)

    def head_modules(self) -> Iterable[nn.Module]:
        """The modules trained at ``head_lr_mult`` (see ``lr_groups``; a kept timm head is pretrained)."""
        if isinstance(self.net, TimmCAMNet):
            return (self.net.classifier,) if getattr(self, "_new_head", True) else ()
        if self.hparams.lr_groups == "official" and backbone_family(self.hparams.backbone) == "resnet":
            return (self.net.trunk.stages[-1], self.net.extra, self.net.classifier)
        return (self.net.extra, self.net.classifier)
