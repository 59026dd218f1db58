"""What ``wsol --help`` (or ``wsol`` alone) prints: what the tool does, its subcommands, where to read more.

LightningCLI's own top-level help says only "Lightning Trainer command line tool" and lists the four Trainer
subcommands; ``wsol`` has more (``eval``, ``export``, ``convert`` are dispatched before LightningCLI), so the
top level gets this page. ``wsol <subcommand> --help`` is unchanged (each subcommand's own full help).
"""

from __future__ import annotations

#: Every ``wsol`` subcommand with its one-line summary, in the order a user meets them.
SUBCOMMANDS: dict[str, str] = {
    "fit": "train a method on a datamodule, then test the final weights (threshold chosen on val)",
    "validate": "evaluate a checkpoint on the val split (metrics table; chooses the operating threshold)",
    "test": "evaluate a checkpoint on the test split (MaxBoxAcc, GT-known/Top-1 Loc, PxAP, baselines)",
    "predict": "maps, boxes, masks of a folder, a photo or a split from a checkpoint: COCO JSON, overlays",
    "eval": "score maps made elsewhere (.npy/.png) against COCO or wsolevaluation ground truth",
    "export": "a checkpoint for use without Lightning: ONNX, safetensors + config, Hub-style folder",
    "convert": "turn an official released checkpoint (BAS, B-CAM, ORNet, wsolevaluation) into one `wsol test` reads",
}

EXAMPLES = (
    "wsol fit --config configs/cam_synthetic.yaml            # a CPU demo, about 2 minutes",
    "wsol test -c configs/bas_cub.yaml --ckpt_path runs/bas_cub/checkpoints/last.ckpt",
    "wsol predict --ckpt_path CKPT --data.data_dir my_photos \\\n"
    "    --trainer.callbacks+=wsol_lightning.callbacks.COCOPredictionWriter --trainer.callbacks.output_dir preds",
    "wsol eval my_maps --coco annotations/test.json --image-root images/test",
)


def top_level_help(prog: str = "wsol") -> str:
    """The text of ``wsol --help``: a summary, every subcommand with one line, examples, and the README pointer."""
    width = max(len(name) for name in SUBCOMMANDS) + 2
    lines = [
        f"usage: {prog} {{{','.join(SUBCOMMANDS)}}} [options]",
        "",
        "Weakly supervised object localization on PyTorch Lightning: train a classifier from image-level labels",
        "only and get object maps, boxes and masks out of it (BAS, B-CAM, ORNet and the wsolevaluation baselines",
        "CAM, HaS, ACoL, SPG, ADL, CutMix on timm backbones), scored with metrics that match wsolevaluation",
        "number for number.",
        "",
        "subcommands:",
        *(f"  {name:<{width}}{text}" for name, text in SUBCOMMANDS.items()),
        "",
        "examples:",
        *(f"  {example}" for example in EXAMPLES),
        "",
        f"`{prog} <subcommand> --help` lists that subcommand's options (`{prog} fit --help`; for the options of a",
        f"method or datamodule: `{prog} fit --model.help BAS`, `{prog} fit --data.help CUBDataModule`).",
        "Runs write under runs/<config name>/ and print where their logs, checkpoints and predictions went.",
        "README.md (the project's front page) walks through every subcommand; notebooks/ has worked examples.",
    ]
    return "\n".join(lines)


def wants_top_level_help(argv: list[str]) -> bool:
    """Whether ``argv`` asks for the top-level help: nothing at all, or only ``-h`` / ``--help``."""
    return not argv or (len(argv) == 1 and argv[0] in ("-h", "--help"))
