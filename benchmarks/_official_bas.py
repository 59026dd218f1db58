"""The official BAS ResNet50 (wpy1999/BAS, ``CUB/Model/resnet.py``) loaded from a local clone, for benchmarks.

Nothing official is copied: the model file is imported from the clone at run time by the parity tool's
loader (``tools/parity/bas.py``), with ``.cuda()`` made the identity in memory. The official training step
(``CUB/train.py``: ``model(imgs, label, 1)``, two cross-entropies, ``model.bas_loss()``, backward, the
official ``get_optimizer``) is reproduced by calling those official functions, and the library's
:class:`~wsol_lightning.methods.BAS` gets the same weights through the official-checkpoint converter.
"""

from __future__ import annotations

import sys
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[1]
MODEL_FILE = "CUB/Model/resnet.py"
OPTIMIZER_FILE = "CUB/utils/optimizer.py"
#: the official CUB ResNet50 recipe (train.py: loss_1 + 0.5 * loss_2 + bas_loss; lr 1e-3, momentum 0.9, wd 5e-4)
ALPHA, LR, MOMENTUM, WEIGHT_DECAY = 0.5, 1e-3, 0.9, 5e-4


def official_clone(path: str | None) -> Path | None:
    """Return the clone's root if ``path`` holds ``CUB/Model/resnet.py``, else ``None`` (column skipped)."""
    if not path:
        return None
    root = Path(path).expanduser().resolve()
    return root if (root / MODEL_FILE).is_file() else None


def _cuda_is_identity() -> None:
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]


def load_official(clone: Path) -> tuple[nn.Module, Callable[[nn.Module], torch.optim.Optimizer]]:
    """Import the official ResNet50 BAS (200 classes, as hard-coded there) and its ``get_optimizer``.

    Returns:
        The model (train mode, random xavier init as the official code) and ``make_optimizer(model)``.

    """
    _cuda_is_identity()
    for path in (REPO, REPO / "tools" / "parity"):  # tools/parity/bas.py imports its sibling _official
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    from tools.parity.bas import _import_official

    model_module = _import_official(clone / MODEL_FILE, "bench_resnet")
    optimizer_module = _import_official(clone / OPTIMIZER_FILE, "bench_optimizer")
    model = model_module.model(Namespace(num_classes=200), pretrained=False).train()
    args = Namespace(lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    return model, lambda m: optimizer_module.get_optimizer(m, args)


def official_loss(model: nn.Module, images: Tensor, labels: Tensor) -> Tensor:
    """The official CUB ResNet50 training objective (``CUB/train.py``), computed by the official model."""
    score_1, score_2 = model(images, labels, 1)
    return F.cross_entropy(score_1, labels) + ALPHA * F.cross_entropy(score_2, labels) + model.bas_loss()


def library_twin(official: nn.Module, **kwargs: Any) -> Any:
    """The library's BAS (ResNet50, 200 classes, CVPR) carrying the official model's weights."""
    from wsol_lightning.methods import BAS
    from wsol_lightning.methods.bas.official import convert_official_state_dict

    module = BAS(backbone="resnet50", num_classes=200, pretrained=False, variant="cvpr", lr=LR,
                 momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, **kwargs)
    module.load_state_dict(convert_official_state_dict(official.state_dict(), module), strict=True)
    return module.train()
