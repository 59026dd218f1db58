"""Every method's CPU recipe, one budget, on datasets the recipes were not tuned on (issue 13).

Usage:
    python benchmarks/generalization.py [--methods cam,bas,bcam,ornet]
        [--datasets synthetic,pets,clutter,clutter_biased] [--epochs 6] [--image_size 64] [--batch_size 32]
        [--val_every 1] [--pets_val_per_class 20] [--out DIR]
        [--set bas:model.init_args.warmup_epochs=3 ...] [--shares ornet=2:2:2] [--table_only]

Each method trains at its CPU recipe (``configs/<method>_synthetic*.yaml``: the same model, optimiser and
schedule) on each dataset through the library's CLI (:class:`~wsol_lightning.cli.WSOLCLI`, seeded), with
only the data swapped and the budget imposed: ``--epochs`` epochs of training per method at
``--image_size`` px over the dataset's whole train split. A method with phases shares the budget between
them in its configs' proportions (ORNet's configs train 2/2/2 epochs; ``--shares ornet=2:3:4`` gives
1/2/3 at 6). A recipe's warm-up epochs (``warmup_epochs``, BAS: 3 of 6) count inside the budget and scale
with it (rounded). The operating threshold is chosen on val, and the test split is scored with the
baselines logged beside it (centre Gaussian, whole image, PxAP chance = positive-pixel rate) and the
sanity warnings.

The budget is ``--epochs`` x the whole train split at ``--image_size`` px, batch ``--batch_size``, the same for
every method; ``--val_every N`` validates every N epochs to save time on long budgets (the last epoch always
validates, as the operating threshold is chosen there).

Datasets (64 px, batch 32 by default):
* ``synthetic``: the embedded demo set (``SyntheticDataModule``: 4 classes, no background correlation).
* ``pets``: the real Oxford-IIIT Pets photos with trimap masks (``OxfordPetsDataModule`` on
  ``../shared/data/oxford_pets_3class`` beside the clone, ``$WSOL_SHARED_DIR`` or ``--pets_dir``);
  skipped with a message when absent. ``--pets_val_per_class`` (20) trainval photos per class are held out
  for val (the datamodule's default, 5, leaves 15 val photos: one photo moves MaxBoxAccV2 by 6.7 points).
* ``clutter``: ``ClutterSyntheticDataModule`` (10 classes, distractors of other classes, textures), the
  background drawn independently of the label.
* ``clutter_biased``: the same generator with ``background_bias=0.7`` on every split, test included
  (``unbiased_test=False``): the test images are the ones where the background predicts the class, and
  localisation is scored against the object's mask, so a map that followed the background shortcut shows
  up as a low PxAP whatever top-1 says (top-1 there is helped by the shortcut).

Results go to ``DIR/results.json`` (one entry per method and dataset; re-running a cell replaces it) and
the table to stdout and ``DIR/table.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (sets the offline environment variables)
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: The Pets photos in the workplace's shared/ folder beside the clone ($WSOL_SHARED_DIR overrides it).
PETS_DIR = Path(os.environ.get("WSOL_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared") / "data" / (
    "oxford_pets_3class")


def discover_methods(config_dir: Path = ROOT / "configs") -> dict[str, list[str]]:
    """Every method with a CPU recipe: ``{method: [config names in phase order]}`` from ``<method>_synthetic*.yaml``.

    A new method is enrolled by adding its ``configs/<method>_synthetic.yaml``; a method with phases has one
    ``<method>_synthetic_<phase>.yaml`` per phase, ordered by the checkpoint each initialises from: a phase
    whose ``model.init_args.init_from`` names ``<other phase>.ckpt`` runs after that phase (ORNet: evaluator
    -> coarse -> refine). CAM (the baseline) comes first, then the methods alphabetically.
    """
    phases: dict[str, list[str]] = {}
    for path in sorted(config_dir.glob("*_synthetic*.yaml")):
        phases.setdefault(path.stem.split("_synthetic", 1)[0], []).append(path.stem)
    order = sorted(phases, key=lambda m: (m != "cam", m))
    return {m: _phase_order(phases[m], config_dir) for m in order}


def _phase_order(names: list[str], config_dir: Path) -> list[str]:
    """Sort one method's phase configs so that each runs after the phase whose checkpoint it starts from."""
    if len(names) == 1:
        return names
    suffix = {n: n.split("_synthetic_", 1)[-1] for n in names}
    after: dict[str, set[str]] = {}
    for name in names:
        init = (yaml.safe_load((config_dir / f"{name}.yaml").read_text())["model"].get("init_args") or {}).get(
            "init_from") or ""
        after[name] = {o for o in names if o != name and str(init).endswith(f"{suffix[o]}.ckpt")}
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and after[n] <= set(ordered)]
        if not ready:
            raise ValueError(f"phases {names}: init_from checkpoints form a cycle")
        ordered.append(ready[0])
    return ordered


METHODS = discover_methods()
DATASETS: dict[str, dict[str, Any]] = {
    "synthetic": {"class_path": "wsol_lightning.data.SyntheticDataModule", "init_args": {"num_classes": 4}},
    "pets": {"class_path": "wsol_lightning.data.OxfordPetsDataModule", "init_args": {}},
    "clutter": {"class_path": "wsol_lightning.data.ClutterSyntheticDataModule",
                "init_args": {"num_classes": 10}},
    "clutter_biased": {"class_path": "wsol_lightning.data.ClutterSyntheticDataModule",
                       "init_args": {"num_classes": 10, "background_bias": 0.7, "unbiased_test": False}},
}
COLUMNS = [("top1_cls", "top-1"), ("maxboxacc_v2", "MaxBoxAccV2"), ("maxboxacc_v2_outer", "V2 outer"),
           ("pxap", "PxAP"), ("piou", "PIoU"), ("baseline_centre_maxboxacc_v2", "centre V2"),
           ("baseline_whole_maxboxacc_v2", "whole V2"), ("baseline_centre_pxap", "centre PxAP"),
           ("pxap_chance", "PxAP chance")]
WARNINGS = ("warn_inverted_map", "warn_degenerate_threshold", "warn_chance_classifier")


def split_epochs(total: int, shares: list[int]) -> list[int]:
    """Split ``total`` epochs over phases in proportion to ``shares`` (largest remainder, each >= 1)."""
    raw = [total * s / sum(shares) for s in shares]
    out = [max(1, math.floor(r)) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - math.floor(raw[i]), reverse=True)
    for i in order[: max(0, total - sum(out))]:
        out[i] += 1
    return out


def rewrite_runs(node: Any, run_dir: Path) -> Any:
    """Point every ``runs/...`` path of a config (checkpoint dirs, ``init_from``, logs) into ``run_dir``."""
    if isinstance(node, dict):
        return {k: rewrite_runs(v, run_dir) for k, v in node.items()}
    if isinstance(node, list):
        return [rewrite_runs(v, run_dir) for v in node]
    if isinstance(node, str) and node.startswith("runs/"):
        return str(run_dir / node.split("/", 2)[-1]) if node.count("/") >= 2 else str(run_dir)
    return node


def set_dotted(config: dict, dotted: str, value: Any) -> None:
    """``config["a"]["b"] = value`` for ``dotted = "a.b"`` (missing levels created)."""
    *path, last = dotted.split(".")
    for key in path:
        config = config.setdefault(key, {})
    config[last] = value


def phase_config(name: str, dataset: str, epochs: int, args: argparse.Namespace, run_dir: Path,
                 overrides: list[tuple[str, Any]]) -> dict:
    """The recipe ``configs/<name>.yaml`` with the data, epochs, seed and paths of this benchmark."""
    config = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
    config = rewrite_runs(config, run_dir)
    data = json.loads(json.dumps(DATASETS[dataset]))
    data["init_args"].update(image_size=args.image_size, batch_size=args.batch_size, num_workers=0)
    if dataset == "pets":
        data["init_args"].update(data_dir=str(args.pets_dir), val_per_class=args.pets_val_per_class)
    else:
        data["init_args"]["data_dir"] = str(args.cache_dir) if args.cache_dir else None
    config["data"] = data
    config["seed_everything"] = args.seed
    trainer = config["trainer"]
    init_args = config["model"].get("init_args", {})
    if init_args.get("warmup_epochs"):  # the warm-up keeps its share of the recipe's epochs
        init_args["warmup_epochs"] = round(init_args["warmup_epochs"] * epochs / trainer["max_epochs"])
    trainer.update(max_epochs=epochs, default_root_dir=str(run_dir), enable_progress_bar=False,
                   check_val_every_n_epoch=args.val_every if epochs % args.val_every == 0 else 1)
    trainer["logger"] = {"class_path": "lightning.pytorch.loggers.CSVLogger",
                         "init_args": {"save_dir": str(run_dir), "name": name}}
    for key, value in overrides:
        set_dotted(config, key, value)
    return config


def last_val_metrics(log_dir: str | Path) -> dict[str, float]:
    """The last logged value of every ``val/`` key in a CSVLogger's ``metrics.csv`` (recipes are chosen on val)."""
    path = Path(log_dir) / "metrics.csv"
    out: dict[str, float] = {}
    if path.is_file():
        with path.open() as f:
            for row in csv.DictReader(f):
                out.update({k.split("/", 1)[1]: float(v) for k, v in row.items() if k.startswith("val/") and v})
    return out


def run_method(method: str, dataset: str, args: argparse.Namespace) -> tuple[dict[str, float], dict[str, float]]:
    """Train every phase of ``method`` on ``dataset``; return the last phase's test and last val metrics."""
    from wsol_lightning.cli import WSOLCLI

    names = METHODS[method]
    shares = args.shares.get(method) or [
        yaml.safe_load((ROOT / "configs" / f"{n}.yaml").read_text())["trainer"]["max_epochs"] for n in names]
    if len(shares) != len(names):
        raise ValueError(f"--shares {method}: {len(names)} phases ({names}), got {shares}")
    overrides = [(k, v) for m, k, v in args.overrides if m == method]
    run_dir = args.out / "runs" / dataset / method
    metrics: dict[str, float] = {}
    val: dict[str, float] = {}
    for name, epochs in zip(names, split_epochs(args.epochs, shares), strict=True):
        config = phase_config(name, dataset, epochs, args, run_dir, overrides)
        path = run_dir / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        argv, sys.argv = sys.argv, sys.argv[:1]  # the CLI reads args=, not this script's own options
        try:
            cli = WSOLCLI(args=["fit", "--config", str(path)])
        finally:
            sys.argv = argv
        metrics = {k.split("/", 1)[1]: float(v) for k, v in cli.trainer.callback_metrics.items()
                   if k.startswith("test/")}
        val = last_val_metrics(cli.trainer.logger.log_dir)
    return metrics, val


def fmt(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.1f}"


def table(results: dict[str, dict]) -> str:
    """The markdown table: method x dataset x metrics, the baselines and the warnings."""
    head = ["dataset", "method", *(label for _, label in COLUMNS), "warnings", "min"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = {d: i for i, d in enumerate(DATASETS)}
    mo = {m: i for i, m in enumerate(METHODS)}
    for key in sorted(results, key=lambda k: (order.get(k.split("/")[1], 99), mo.get(k.split("/")[0], 99))):
        method, dataset = key.split("/")
        row = results[key]
        m = row["metrics"]
        warns = ", ".join(w.removeprefix("warn_") for w in WARNINGS if m.get(w, 0.0) > 0) or "none"
        cells = [dataset, method, *(fmt(m.get(k)) for k, _ in COLUMNS), warns, f"{row['minutes']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_override(text: str) -> tuple[str, str, Any]:
    """``method:dotted.key=value`` (value parsed as YAML)."""
    try:
        method, rest = text.split(":", 1)
        key, value = rest.split("=", 1)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--set expects method:dotted.key=value, got {text!r}") from err
    if method not in METHODS:
        raise argparse.ArgumentTypeError(f"--set {text!r}: unknown method {method!r} (one of {list(METHODS)})")
    return method, key, yaml.safe_load(value)


def parse_shares(text: str) -> dict[str, list[int]]:
    """``ornet=2:2:2,...``: how a method's phases share the budget (default: its configs' max_epochs)."""
    out = {}
    for item in filter(None, text.split(",")):
        method, _, ratio = item.partition("=")
        out[method] = [int(x) for x in ratio.split(":")]
    return out


def main(argv: list[str] | None = None) -> None:
    from _common import machine

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--epochs", "--budget", type=int, default=6, help="training epochs per method (all phases)")
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--val_every", type=int, default=1,
                   help="validate every N epochs (phases whose epochs N does not divide validate every epoch, "
                   "so the last epoch always chooses the threshold)")
    p.add_argument("--pets_val_per_class", type=int, default=20,
                   help="trainval photos per class held out for val (the threshold and recipes are chosen there)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/generalization"))
    p.add_argument("--pets_dir", type=Path, default=PETS_DIR)
    p.add_argument("--cache_dir", type=Path, default=None, help="where the synthetic sets are generated")
    p.add_argument("--set", dest="overrides", type=parse_override, action="append", default=[],
                   help="method:dotted.key=value, e.g. bas:model.init_args.warmup_epochs=3")
    p.add_argument("--shares", type=parse_shares, default={},
                   help="phase shares of the budget, e.g. ornet=2:2:2 (default: the configs' max_epochs)")
    p.add_argument("--table_only", action="store_true", help="print the stored results, train nothing")
    args = p.parse_args(argv)
    methods, datasets = args.methods.split(","), args.datasets.split(",")
    for name, known in ((methods, METHODS), (datasets, DATASETS)):
        unknown = [n for n in name if n not in known]
        if unknown:
            p.error(f"unknown {unknown}; choose from {list(known)}")
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "results.json"
    results = json.loads(store.read_text()) if store.is_file() else {}
    budget = (f"{args.epochs} epochs x whole train split x {args.image_size} px, batch {args.batch_size}, "
              f"seed {args.seed}")
    if not args.table_only:
        for dataset in datasets:
            if dataset == "pets" and not (args.pets_dir / "annotations").is_dir():
                print(f"skipping pets: no Oxford-IIIT Pets data at {args.pets_dir} (pass --pets_dir)")
                continue
            for method in methods:
                start = time.perf_counter()
                metrics, val = run_method(method, dataset, args)
                results[f"{method}/{dataset}"] = {
                    "metrics": metrics, "val": val, "minutes": (time.perf_counter() - start) / 60, "budget": budget,
                    "overrides": [f"{k}={v}" for m, k, v in args.overrides if m == method],
                    "shares": args.shares.get(method),
                    "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
                store.write_text(json.dumps(results, indent=1))
    text = table(results)
    (args.out / "table.md").write_text(f"Budget: {budget}\n\n{text}\n")
    print(f"\nBudget: {budget}; {machine()}\n{text}")


if __name__ == "__main__":
    main()
