"""Golden parity fixtures for BAS from the official code (wpy1999/BAS and wpy1999/BAS-Extension).

Run with local clones of both repositories::

    python tools/parity/bas.py --bas /path/BAS --bas-extension /path/BAS-Extension \
        --out tests/fixtures/parity/bas

For every cell (CVPR ``CUB/Model`` and IJCV ``WSOL/Model`` for VGG16, ResNet50, InceptionV3 and
MobileNetV1, plus the IJCV ``WSSS`` ResNet50) the official model is imported from the clone at run time
(``.cuda()`` made a no-op, ``skimage`` stubbed if absent, the default dtype set to float64 so the
official code runs in float64 throughout), filled with :func:`seeded_state_dict` over its own key/shape
list and run on seeded inputs: train forward, every loss term, backward, and the test map. The fixture
keeps the key/shape list, the seeds, the labels, the loss terms, gradient norms per official parameter
and a few gradient slices, and the raw test maps. No official code and no weights are written.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from argparse import Namespace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from _official import gradient_record
from torch import Tensor, nn

from wsol_lightning.testing import key_shapes_of, save_fixture, seeded_inputs, seeded_state_dict

#: cell -> (repo, model file, num_classes, alpha, test top-k, image size); alpha from the official
#: train scripts / hyperparameters (CUB), beta is read back from the official code itself.
CELLS: dict[str, tuple[str, str, int, float, int, int]] = {
    "cvpr_vgg16": ("bas", "CUB/Model/vgg.py", 200, 0.0, 80, 224),
    "cvpr_resnet50": ("bas", "CUB/Model/resnet.py", 200, 0.5, 200, 224),
    "cvpr_inception_v3": ("bas", "CUB/Model/inception.py", 200, 0.5, 200, 224),
    "cvpr_mobilenetv1": ("bas", "CUB/Model/mobilenet.py", 200, 0.5, 200, 224),
    "ijcv_vgg16": ("ext", "WSOL/Model/vgg.py", 200, 0.0, 80, 224),
    "ijcv_resnet50": ("ext", "WSOL/Model/resnet.py", 200, 0.5, 200, 224),
    "ijcv_inception_v3": ("ext", "WSOL/Model/inception.py", 200, 0.5, 200, 224),
    "ijcv_mobilenetv1": ("ext", "WSOL/Model/mobilenet.py", 200, 0.5, 80, 224),
    "wsss_resnet50": ("ext", "WSSS/net/resnet50_bas.py", 20, 0.2, 1, 224),
}
#: IJCV CUB beta (WSOL/utils/hyperparameters.py); CVPR betas are hard-coded in each model's bas_loss.
IJCV_BETA = {"vgg16": 0.9, "resnet50": 1.5, "inception_v3": 1.0, "mobilenetv1": 1.9, "wsss": 1.2}
BATCH = 2
WEIGHT_SEED, INPUT_SEED, LABEL_SEED = 1234, 5678, 91
#: official parameters whose gradients are also stored as slices (first elements, flattened)
SLICE_SUFFIXES = ("classifier_loc.0.weight", "classifier_cls.0.weight", "classifier.0.weight",
                  "classifier_cls.weight")
SLICE_LEN = 16
_PURGE = ("utils", "util", "Model", "net", "misc")


def _patch_environment() -> None:
    """CPU-only, float64 run of GPU code: ``.cuda()`` is the identity; skimage stubbed if missing."""
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.set_default_dtype(torch.float64)
    try:
        import skimage  # noqa: F401
    except ImportError:
        skimage = types.ModuleType("skimage")
        skimage.measure = types.ModuleType("skimage.measure")  # type: ignore[attr-defined]
        sys.modules["skimage"], sys.modules["skimage.measure"] = skimage, skimage.measure  # type: ignore[attr-defined]


def _import_official(path: Path, tag: str) -> types.ModuleType:
    """Import one official model file with its own directory tree first on ``sys.path``."""
    for name in list(sys.modules):
        if name.split(".")[0] in _PURGE:
            del sys.modules[name]
    root = path.parent.parent  # e.g. BAS/CUB for BAS/CUB/Model/vgg.py
    sys.path.insert(0, str(root))
    try:
        spec = importlib.util.spec_from_file_location(f"official_bas_{tag}", path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    finally:
        sys.path.remove(str(root))
    return module


def _build(cell: str, repos: dict[str, Path]) -> tuple[types.ModuleType, nn.Module]:
    repo, rel, num_classes, *_ = CELLS[cell]
    module = _import_official(repos[repo] / rel, cell)
    if cell.startswith("wsss"):
        return module, module.model(pretrained=False)
    return module, module.model(Namespace(num_classes=num_classes), pretrained=False)


def _fixed_choice(module: types.ModuleType, indices: list[int]) -> None:
    """Replace the WSSS code's ``random.randint`` (positive-class draw) by a fixed sequence of picks."""
    picks = iter(indices)
    module.random = types.SimpleNamespace(randint=lambda low, high: next(picks))


def _grad_record(model: nn.Module) -> tuple[list[str], Tensor, dict[str, Tensor]]:
    first_convs = ("conv1.weight", "conv1_1.weight", "model.0.0.weight", "Conv2d_1a_3x3.conv.weight")
    return gradient_record(model, lambda name: name.endswith(SLICE_SUFFIXES) or name in first_convs, SLICE_LEN)


def _wsol_cell(cell: str, module: types.ModuleType, model: nn.Module, images: Tensor,
               labels: Tensor) -> dict[str, Any]:
    _, _, _, alpha, top_k, _ = CELLS[cell]
    variant, backbone = cell.split("_", 1)
    model.train()
    if variant == "cvpr":
        score_1, score_2 = model(images, labels, 1)
        combined = model.bas_loss()  # mean(r + beta * area) as the official code sums them
        saliency = model.x_saliency
        model.x_saliency = torch.zeros_like(saliency)
        bas = model.bas_loss()  # the same with the area term zeroed: the r term alone
        model.x_saliency = saliency
        area = saliency.reshape(BATCH, -1).mean(1).mean(0)
        beta = round(float((combined - bas).detach() / area.detach()), 6)
        rest = combined
    else:
        score_1, score_2, bas, area, _ = model(images, labels, 1)
        bas, area = bas.mean(0), area.mean(0)
        beta = IJCV_BETA[backbone]
        rest = bas + area * beta
    loss_cls = F.cross_entropy(score_1, labels)
    loss_frg = F.cross_entropy(score_2, labels)
    total = loss_cls + loss_frg * alpha + rest
    total.backward()
    names, norms, slices = _grad_record(model)
    return {"alpha": alpha, "beta": beta, "top_k": top_k, "train_logits": score_1.detach(),
            "losses": {"cls": loss_cls.detach(), "frg": loss_frg.detach(), "bas": bas.detach(),
                       "ac": area.detach(), "total": total.detach()},
            "grad_names": names, "grad_norms": norms, "grad_slices": slices}


def _wsol_test_maps(cell: str, model: nn.Module, images: Tensor, labels: Tensor) -> dict[str, Tensor]:
    top_k = CELLS[cell][4]
    model.eval()
    out: dict[str, Tensor] = {}
    with torch.no_grad():
        for k in sorted({1, top_k}):
            if cell.startswith("cvpr"):
                logits, _ = model(images, labels, k)
                fpm = model.x_saliency
            else:
                logits, _, _, fpm = model(images, labels, k, evaluate=True)
            out[f"map_top{k}"] = fpm[:, 0].clone()
            out["eval_logits"] = logits.clone()
    return out


def _wsss_cell(module: types.ModuleType, model: nn.Module, images: Tensor, multi_hot: Tensor,
               picks: list[int]) -> dict[str, Any]:
    cross_entropy = _multilabel_ce(module)
    _fixed_choice(module, picks)
    model.train()
    score_1, loss_frg, bas, area = model(images, multi_hot)
    loss_cls = cross_entropy(score_1, multi_hot)
    alpha, beta = CELLS["wsss_resnet50"][3], IJCV_BETA["wsss"]
    total = loss_cls + loss_frg * alpha + bas + area * beta
    total.backward()
    names, norms, slices = _grad_record(model)
    return {"alpha": alpha, "beta": beta, "top_k": 1, "train_logits": score_1.detach(),
            "losses": {"cls": loss_cls.detach(), "frg": loss_frg.detach(), "bas": bas.detach(),
                       "ac": area.detach(), "total": total.detach()},
            "grad_names": names, "grad_norms": norms, "grad_slices": slices}


def _multilabel_ce(model_module: types.ModuleType) -> Any:
    """The official multi-label loss of ``WSSS/train_bas.py`` (its ``cross_entropy``), executed from the clone.

    ``train_bas.py`` parses arguments and starts DDP at import, so only the function's source is run, in
    a namespace that provides what it uses (``torch``, ``nn``, ``local_rank`` = CPU).
    """
    source = Path(model_module.__file__).parent.parent.joinpath("train_bas.py").read_text()
    start = source.index("def cross_entropy(")
    end = source.index("\nclass ", start)
    namespace: dict[str, Any] = {"torch": torch, "nn": nn, "local_rank": "cpu"}
    exec(compile(source[start:end], "train_bas.py:cross_entropy", "exec"), namespace)  # noqa: S102
    return namespace["cross_entropy"]


def _wsss_test_map(model: nn.Module, images: Tensor) -> dict[str, Tensor]:
    """The official seed forward: ``M[0] + M[1].flip(-1)`` for an image and its flipped copy."""
    model.eval()
    with torch.no_grad():
        pair = torch.stack([images[0], images[0].flip(-1)])
        return {"seed_map": model(pair).clone()}


def run_cell(cell: str, repos: dict[str, Path]) -> dict[str, Any]:
    """Build one official model with seeded weights and record its numbers."""
    module, model = _build(cell, repos)
    key_shapes = key_shapes_of(model.state_dict())
    state = seeded_state_dict(key_shapes, WEIGHT_SEED)
    size, num_classes = CELLS[cell][5], CELLS[cell][2]
    images = seeded_inputs((BATCH, 3, size, size), INPUT_SEED)
    fixture: dict[str, Any] = {"cell": cell, "official_file": CELLS[cell][1], "key_shapes": key_shapes,
                               "weight_seed": WEIGHT_SEED, "input_seed": INPUT_SEED, "image_size": size,
                               "batch": BATCH, "num_classes": num_classes, "dtype": "float64"}
    gen = torch.Generator().manual_seed(LABEL_SEED)
    if cell.startswith("wsss"):
        multi_hot = torch.zeros(BATCH, num_classes)
        multi_hot[0, [2, 7, 14]] = 1
        multi_hot[1, [5]] = 1
        picks = [1, 0]  # index into each image's positive classes: classes 7 and 5
        positives = [torch.nonzero(row).squeeze(-1) for row in multi_hot]
        fixture.update(multi_hot=multi_hot, label=torch.stack([p[i] for p, i in zip(positives, picks)]))
        model.load_state_dict(state)
        fixture.update(_wsss_cell(module, model, images, multi_hot, picks))
        model.load_state_dict(state)
        fixture.update(_wsss_test_map(model, images))
        return fixture
    labels = torch.randint(0, num_classes, (BATCH,), generator=gen)
    fixture["label"] = labels
    model.load_state_dict(state)
    fixture.update(_wsol_cell(cell, module, model, images, labels))
    model.load_state_dict(state)  # fresh running statistics for the test forward
    fixture.update(_wsol_test_maps(cell, model, images, labels))
    return fixture


#: CVPR ILSVRC models (1000 classes; persistent frozen copies in their state dicts): key lists only, so the
#: converter is tested on the released ILSVRC format (VGG16's ILSVRC keys are its CUB keys).
ILSVRC_FILES = {"resnet50": "ILSVRC/Model/resnet.py", "inception_v3": "ILSVRC/Model/inception.py",
                "mobilenetv1": "ILSVRC/Model/mobilenet.py"}


def ilsvrc_key_lists(bas_root: Path) -> dict[str, Any]:
    """The state-dict key/shape lists of the CVPR ILSVRC models."""
    lists = {}
    for backbone, rel in ILSVRC_FILES.items():
        module = _import_official(bas_root / rel, f"ilsvrc_{backbone}")
        model = module.model(Namespace(num_classes=1000), pretrained=False)
        lists[backbone] = key_shapes_of(model.state_dict())
    return {"key_shapes": lists, "weight_seed": WEIGHT_SEED}


def main(argv: list[str] | None = None) -> None:
    """Write one fixture per cell into ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bas", type=Path, required=True, help="clone of wpy1999/BAS")
    parser.add_argument("--bas-extension", type=Path, required=True, help="clone of wpy1999/BAS-Extension")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/parity/bas"))
    parser.add_argument("--cells", nargs="*", default=list(CELLS), choices=list(CELLS))
    args = parser.parse_args(argv)
    _patch_environment()
    repos = {"bas": args.bas.resolve(), "ext": args.bas_extension.resolve()}
    for cell in args.cells:
        size = save_fixture(args.out / f"{cell}.pt", run_cell(cell, repos))
        print(f"{cell}: {size / 1024:.1f} KiB")
    size = save_fixture(args.out / "ilsvrc_key_lists.pt", ilsvrc_key_lists(repos["bas"]))
    print(f"ilsvrc_key_lists: {size / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
