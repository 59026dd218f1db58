"""Golden parity fixtures for ORNet from a local clone of the official code (Sierkinhane/ORNet).

    python tools/parity/ornet.py --ornet /work/official/ORNet --out tests/fixtures/parity/ornet

Imports ``models/{model,unet,evaluator,loss,erasing}.py`` from the clone at run time (nothing is copied),
with these in-memory patches only: torchvision's ``resnet50`` / ``vgg16`` build without downloading
weights (every weight is then drawn with :func:`seeded_state_dict` over the official key/shape list),
``Tensor.cuda`` is the identity, and the random draws of ``models/erasing.py`` (``np.random.uniform`` for
alpha, ``torch.rand`` for the per-image coin, ``torch.randint`` for the half sizes,
``np.random.binomial`` for the drop noise) are replaced by functions of fixed uniforms that the
library's :func:`attentive_erase` receives as :class:`ErasingUniforms`. Everything runs in float64.

Fixtures (``--out``):

* ``coarse.pt``: stage 1 (``CoarseModel``, eval mode, first image): ``sx`` (head on ``f^a``), ``mx`` (main
  path), the map ``att``. The stage-1 training script is not released: no loss is compared.
* ``evaluator.pt``: ``Evaluator`` (torchvision VGG16) logits, eval mode, first image (its train mode, with
  dropout, is compared inside ``refine.pt``).
* ``refine.pt``: ``FineModel`` in train mode as ``train_2nd_step.py`` (BatchNorm batch statistics, the
  frozen evaluator's dropout active, seeded) with deterministic erasing: CE, area loss (with the class
  term over evaluator ranks 4..25), weighted entropy, total, the map, the erase set, gradient norms and
  samples of every trainable tensor, running means of frozen BatchNorms after the step.
* ``erasing.pt``: ``AttentiveErasing`` on many maps (several alphas, coins, half-size draws).
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wsol_lightning.methods.ornet.erasing import draw_uniforms
from wsol_lightning.testing import key_shapes_of, save_fixture, seeded_inputs, seeded_state_dict

SEEDS = {"coarse": 1201, "evaluator": 1202, "refine": 1203, "inputs": 1301, "dropout": 1401, "maps": 1501}
LABELS = [3, 150]
NUM_CLASSES = 200
SAMPLES = 256


def import_official(root: Path) -> dict[str, types.ModuleType]:
    """Import the official ``models`` package from ``root`` with torchvision weights never downloaded."""
    import torchvision

    for name in ("resnet50", "vgg16"):
        original = getattr(torchvision.models, name)
        setattr(torchvision.models, name, lambda *a, _f=original, **k: _f(weights=None))
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    sys.path.insert(0, str(root))
    names = ("models.unet", "models.evaluator", "models.erasing", "models.model", "models.loss")
    return {n.split(".")[1]: importlib.import_module(n) for n in names}


class FixedDraws:
    """Stand-ins for the random calls of the official erasing module, driven by fixed uniforms."""

    def __init__(self, alpha: float, coin: torch.Tensor, half_h: torch.Tensor, half_w: torch.Tensor,
                 noise: torch.Tensor) -> None:
        self.alpha, self.coin, self.half_h, self.half_w, self.noise = alpha, coin, half_h, half_w, noise
        self.image, self.randint_calls, self.binomial_calls = -1, 0, 0

    def uniform(self, low: float, high: float) -> float:
        """``np.random.uniform``: the fixed alpha uniform, scaled."""
        return low + (high - low) * self.alpha

    def rand(self, *size: int) -> torch.Tensor:
        """``torch.rand(1)``: the next image's coin."""
        self.image += 1
        self.randint_calls = 0
        return self.coin[self.image].reshape(1)

    def randint(self, low: int, high: object, size: tuple[int, ...]) -> torch.Tensor:
        """``torch.randint(low, high, (1,))``: the half height, then the half width (raises as torch does)."""
        high = int(high)
        if high <= low:
            raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
        u = (self.half_h if self.randint_calls == 0 else self.half_w)[self.image]
        self.randint_calls += 1
        return torch.tensor([low + math.floor(float(u) * (high - low))])

    def binomial(self, n: int, p: np.ndarray, size: int) -> np.ndarray:
        """``np.random.binomial(1, p, size)``: the next image's noise below ``p``."""
        u = self.noise[self.binomial_calls].reshape(-1).numpy()
        self.binomial_calls += 1
        return (u < p).astype(np.int64)


def install_draws(erasing: types.ModuleType, draws: FixedDraws) -> None:
    """Point the official erasing module's ``np`` and ``torch`` at proxies using ``draws``."""
    rng = types.SimpleNamespace(uniform=draws.uniform, binomial=draws.binomial)
    erasing.np = types.SimpleNamespace(random=rng, float64=np.float64)
    proxy = types.ModuleType("torch_proxy")
    proxy.__dict__.update({k: getattr(torch, k) for k in dir(torch) if not k.startswith("__")})
    proxy.rand, proxy.randint = draws.rand, draws.randint
    erasing.torch = proxy


def uniforms_for(batch: int, size: int, seed: int, alpha: float, coin: list[float]) -> dict[str, torch.Tensor]:
    """Fixed uniforms of one erasing call (float64): :func:`draw_uniforms` from ``seed``, alpha and coins set.

    The fixtures store ``seed``, ``alpha`` and ``coin``; the test draws the rest the same way.
    """
    gen = torch.Generator().manual_seed(seed)
    u = draw_uniforms(batch, size, size, generator=gen, dtype=torch.float64)
    return {"alpha": torch.tensor([alpha], dtype=torch.float64), "coin": torch.tensor(coin, dtype=torch.float64),
            "half_h": u.half_h, "half_w": u.half_w, "noise": u.noise}


def official_erase(erasing: types.ModuleType, maps: torch.Tensor, u: dict[str, torch.Tensor]) -> tuple:
    """Run the official ``AttentiveErasing`` (training mode) on ``maps`` with the uniforms ``u``."""
    install_draws(erasing, FixedDraws(float(u["alpha"][0]), u["coin"], u["half_h"], u["half_w"], u["noise"]))
    module = erasing.AttentiveErasing(max_factor=0.5).train()
    return module(maps)


def samples(t: torch.Tensor) -> torch.Tensor:
    """A strided sample of at most ``SAMPLES`` values of ``t`` (flattened)."""
    flat = t.detach().reshape(-1)
    return flat[:: max(1, flat.numel() // SAMPLES)][:SAMPLES].clone()


def coarse_fixture(mods: dict, images: torch.Tensor) -> dict:
    """Stage 1: ``CoarseModel`` outputs (eval mode, first image)."""
    model = mods["model"].CoarseModel(64, num_classes=NUM_CLASSES).double()
    keys = key_shapes_of(model.state_dict())
    model.load_state_dict(seeded_state_dict(keys, SEEDS["coarse"]))
    with torch.no_grad():
        sx, mx, att = model.eval()(images[:1])
    return {"key_shapes": keys, "seed": SEEDS["coarse"], "input_seed": SEEDS["inputs"], "images": 1,
            "sx": sx, "mx": mx, "att": att}


def evaluator_fixture(mods: dict, images: torch.Tensor) -> dict:
    """The evaluator: VGG16 logits (eval mode, first image)."""
    model = mods["evaluator"].Evaluator(num_classes=NUM_CLASSES).double()
    keys = key_shapes_of(model.state_dict())
    model.load_state_dict(seeded_state_dict(keys, SEEDS["evaluator"]))
    with torch.no_grad():
        logits = model.eval()(images[:1])
    return {"key_shapes": keys, "seed": SEEDS["evaluator"], "input_seed": SEEDS["inputs"], "images": 1,
            "logits": logits}


def refine_fixture(mods: dict, images: torch.Tensor, coarse_keys: list) -> dict:
    """Stage 2: ``FineModel`` train step as ``train_2nd_step.py`` with deterministic erasing."""
    with tempfile.TemporaryDirectory() as tmp:  # FineModel reads a stage-1 file at construction
        path = Path(tmp) / "coarse.pth"
        torch.save({"state_dict": seeded_state_dict(coarse_keys, SEEDS["coarse"], torch.float32)}, path)
        model = mods["model"].FineModel(64, str(path), "", num_classes=NUM_CLASSES).double()
    keys = key_shapes_of(model.state_dict())
    model.load_state_dict(seeded_state_dict(keys, SEEDS["refine"]))
    u = uniforms_for(images.shape[0], 56, SEEDS["refine"], alpha=0.7, coin=[0.2, 0.4])
    install_draws(mods["erasing"], FixedDraws(float(u["alpha"][0]), u["coin"], u["half_h"], u["half_w"],
                                              u["noise"]))
    labels = torch.tensor(LABELS)
    model.train()
    captured = {}
    model.erasing.register_forward_hook(lambda m, i, o: captured.update(region=o[1][:, 0] == 0))
    torch.manual_seed(SEEDS["dropout"])
    main_out, att, att_dropout, features = model(images)
    loss_mod = mods["loss"]
    ce = F.cross_entropy(main_out, labels)
    area = loss_mod.AreaLoss(topk=25)(att, main_out, features)
    area_plain = loss_mod.AreaLoss(topk=0)(att, main_out, features)
    entropy = loss_mod.WeightedEntropyLoss()(att)
    total = ce + 0.02 * area + 1.5 * entropy
    total.backward()
    grads = {n: {"norm": p.grad.norm(), "samples": samples(p.grad)}
             for n, p in model.named_parameters() if p.requires_grad}
    return {
        "key_shapes": keys, "seed": SEEDS["refine"], "input_seed": SEEDS["inputs"], "labels": labels,
        "dropout_seed": SEEDS["dropout"], "uniforms": {"seed": SEEDS["refine"], "alpha": u["alpha"], "coin": u["coin"]},
        "logits": main_out.detach(), "att": att.detach(),
        "region": captured["region"], "dropped": att_dropout.detach()[:, 0] == 0,
        "att_dropout_sum": att_dropout.detach().sum(dim=(1, 2, 3)),
        "loss": {"ce": ce.detach(), "area": area.detach(), "area_plain": area_plain.detach(),
                 "entropy": entropy.detach(), "total": total.detach()},
        "grads": grads,
        "running_mean": {"bn1": model.bn1.running_mean.clone(),
                         "att_layer4.up_1.conv.UConv.1": model.att_layer4.up_1.conv.UConv[1].running_mean.clone()},
    }


def erasing_maps(count: int, size: int, seed: int) -> torch.Tensor:
    """Plateaus (random centre and radii, some cut by the border, soft or sharp edges) plus noise, in (0, 1)."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=gen, dtype=torch.float64)

    grid = torch.arange(size, dtype=torch.float64)
    centre = rand(count, 2) * (size + 6) - 3
    radius = 3 + rand(count, 2) * size / 2
    ys = ((grid[None, :] - centre[:, :1]) / radius[:, :1]) ** 2
    xs = ((grid[None, :] - centre[:, 1:]) / radius[:, 1:]) ** 2
    sharpness = 2 + 10 * rand(count, 1, 1)
    blob = torch.sigmoid(sharpness * (1 - (ys[:, :, None] + xs[:, None, :]).sqrt()))
    noise = rand(count, size, size)
    level = rand(count, 1, 1)
    maps = (0.05 + 0.8 * blob + 0.15 * level * noise).clamp(0, 1).half()  # stored as float16
    flat = maps.view(count, -1)
    for i in range(count):  # a unique peak (the official topk and a max may break ties differently)
        top = flat[i].max()
        ties = torch.nonzero(flat[i] == top)[:, 0]
        if len(ties) > 1:
            flat[i, ties[1:]] = (top.float() * 0.999).half()
    return maps[:, None]


def erasing_fixture(mods: dict) -> dict:
    """``AttentiveErasing`` on 184 maps (28 and 56 px), 26 calls with their own alpha, coins and draws."""
    calls = []
    for size, count, batch in ((28, 160, 8), (56, 24, 4)):
        maps = erasing_maps(count, size, SEEDS["maps"] + size)
        for start in range(0, count, batch):
            chunk = maps[start:start + batch].double()
            index = start // batch
            alpha = (index + 0.5) / (count // batch)
            coin = [0.1 if (index + j) % 4 else 0.7 for j in range(chunk.shape[0])]
            seed = SEEDS["maps"] + 1000 * size + index
            u = uniforms_for(chunk.shape[0], size, seed, alpha, coin)
            out, mask = official_erase(mods["erasing"], chunk, u)
            region = mask[:, 0] == 0
            calls.append({"maps": maps[start:start + batch], "uniforms": {"seed": seed, "alpha": u["alpha"],
                                                                          "coin": u["coin"]},
                          "region": torch.from_numpy(np.packbits(region.numpy(), axis=-1)),
                          "region_count": region.sum(dim=(1, 2)), "out_sum": out.sum(dim=(1, 2, 3)),
                          "out_sq": (out**2).sum(dim=(1, 2, 3))})
    return {"calls": calls}


def main() -> None:
    """Write the fixtures named by ``--only`` (all four by default)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ornet", type=Path, required=True, help="local clone of Sierkinhane/ORNet")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/parity/ornet"))
    parser.add_argument("--only", nargs="*", default=["coarse", "evaluator", "refine", "erasing"])
    args = parser.parse_args()
    torch.set_default_dtype(torch.float64)
    mods = import_official(args.ornet.resolve())
    images = seeded_inputs((2, 3, 224, 224), SEEDS["inputs"])
    coarse_keys = key_shapes_of(mods["model"].CoarseModel(64, num_classes=NUM_CLASSES).state_dict())
    builders = {"coarse": lambda: coarse_fixture(mods, images),
                "evaluator": lambda: evaluator_fixture(mods, images),
                "refine": lambda: refine_fixture(mods, images, coarse_keys),
                "erasing": lambda: erasing_fixture(mods)}
    for name in args.only:
        size = save_fixture(args.out / f"{name}.pt", builders[name]())
        print(f"{args.out / name}.pt: {size / 1024:.1f} KiB", flush=True)


if __name__ == "__main__":
    main()
