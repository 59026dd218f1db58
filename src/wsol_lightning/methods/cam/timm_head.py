"""CAM on a whole timm classifier, reusing the classifier's own head (a map without training).

A timm classifier ends in ``forward_features -> forward_head``. When the head is global average pooling
followed by a linear layer (ResNets, EfficientNets, DenseNets, RegNets, ...), the logit of class ``c`` is the
spatial mean of the map ``M_c = sum_k w_ck F_k + b_c``: that map is the CAM. ConvNeXt-style heads put a
LayerNorm on the pooled vector ``p`` (``(p - mean(p)) / s * gamma + beta``); the mean over channels is linear
in the features, and ``s`` is one positive scalar per image, so ``M_c = sum_k w_ck gamma_k (F_k - m) / s +
sum_k w_ck beta_k + b_c`` (``m`` the per-pixel channel mean) still averages exactly to the logit. Any other
head (an MLP after pooling, as in VGG or MobileNetV3) has no such map and is refused by name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torchvision.transforms.functional as TF  # noqa: N812
from timm.layers import LayerNorm, LayerNorm2d, NormMlpClassifierHead
from torch import Tensor, nn

from wsol_lightning.backbones.weights import create_timm_model


class TimmCAMNet(nn.Module):
    """A timm classifier whose maps come from its own pooling + linear head.

    Args:
        backbone: timm model name.
        num_classes: classes of the head; timm's own count (e.g. 1000) keeps the pretrained head, another
            count gives a new head (to be trained).
        pretrained: ``False``, ``True`` (timm's weights, needs the hub once) or a local weights file.

    Raises:
        ValueError: the model's head is not global average pooling + (LayerNorm) + linear.

    """

    def __init__(self, backbone: str, num_classes: int, pretrained: bool | str = False) -> None:
        super().__init__()
        self.model = create_timm_model(backbone, pretrained, num_classes=num_classes)
        self.classifier = self.model.get_classifier()
        if not isinstance(self.classifier, nn.Linear):
            raise ValueError(f"timm model '{backbone}' ends in {type(self.classifier).__name__}, not a linear "
                             "classifier: CAM.from_timm needs global average pooling + a linear head")
        head = getattr(self.model, "head", None)
        self.norm = head.norm if isinstance(head, NormMlpClassifierHead) else None
        if self.norm is not None and not isinstance(self.norm, (LayerNorm2d, LayerNorm)):
            raise ValueError(f"timm model '{backbone}': unsupported head norm {type(self.norm).__name__}")
        self.feature_channels = self.classifier.in_features
        self._check_head(backbone)

    @torch.no_grad()
    def _check_head(self, backbone: str) -> None:
        """Probe the head with random features: the maps' spatial means must equal its logits."""
        was_training = self.model.training
        self.model.eval()
        features = torch.randn(2, self.feature_channels, 3, 4, generator=torch.Generator().manual_seed(0))
        try:
            logits = self.model.forward_head(features)
        except RuntimeError as error:
            raise ValueError(f"timm model '{backbone}': its head does not take {self.feature_channels}-channel "
                             f"features directly (an MLP or conv after pooling?); CAM.from_timm needs global "
                             f"average pooling + a linear head ({error})") from error
        classes = torch.arange(logits.shape[1]).expand(2, -1)
        means = torch.stack([self.class_maps(features, classes[:, c]).mean(dim=(1, 2))
                             for c in range(min(8, logits.shape[1]))], dim=1)
        self.model.train(was_training)
        if not torch.allclose(means, logits[:, : means.shape[1]], rtol=1e-4, atol=1e-4):
            raise ValueError(f"timm model '{backbone}': its head is not global average pooling + linear (the "
                             "maps' means differ from its logits), so it has no class activation map")

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Return ``features`` ``(B, K, h, w)`` and timm's own ``logits`` ``(B, C)``."""
        features = self.model.forward_features(images)
        return {"features": features, "logits": self.model.forward_head(features)}

    def class_maps(self, features: Tensor, classes: Tensor) -> Tensor:
        """Maps ``(B, h, w)`` of ``classes`` ``(B,)`` whose spatial means are the head's logits."""
        weights = self.classifier.weight[classes]  # (B, K)
        bias = self.classifier.bias[classes] if self.classifier.bias is not None else torch.zeros_like(weights[:, 0])
        if self.norm is None:
            return torch.einsum("bk,bkhw->bhw", weights, features) + bias[:, None, None]
        pooled = features.mean(dim=(2, 3))  # (B, K)
        scale = torch.sqrt(pooled.var(dim=1, unbiased=False) + self.norm.eps)  # (B,)
        gamma = self.norm.weight if self.norm.weight is not None else torch.ones_like(weights[0])
        centred = features - features.mean(dim=1, keepdim=True)
        maps = torch.einsum("bk,bkhw->bhw", weights * gamma, centred) / scale[:, None, None]
        if self.norm.bias is not None:
            bias = bias + weights @ self.norm.bias
        return maps + bias[:, None, None]


def preprocess_image(image: Any, size: int = 224, mean: tuple[float, ...] = (0.485, 0.456, 0.406),
                     std: tuple[float, ...] = (0.229, 0.224, 0.225)) -> Tensor:
    """A PIL image or ``(H, W, 3)`` uint8 array -> a normalised ``(1, 3, size, size)`` batch.

    Resized straight to ``size`` x ``size`` (bilinear, no crop: the evaluation protocol's eval transform).
    """
    if isinstance(image, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
    else:
        tensor = TF.to_tensor(image.convert("RGB"))
    tensor = TF.resize(tensor, [size, size], antialias=True)
    return TF.normalize(tensor, list(mean), list(std))[None]


def timm_num_classes(backbone: str) -> int:
    """The number of classes of timm's pretrained head for ``backbone`` (e.g. 1000 for ImageNet-1k)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(backbone)
    if cfg is not None and getattr(cfg, "num_classes", None):
        return int(cfg.num_classes)
    return int(timm.create_model(backbone, pretrained=False).num_classes)
