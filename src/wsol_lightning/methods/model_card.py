"""The model card (``README.md``) written beside every exported or ``save_pretrained`` folder.

The card is a Hugging Face Hub model card (YAML metadata + Markdown, :class:`huggingface_hub.ModelCard`):
method, backbone, classes, eval image size and normalisation, the operating threshold chosen on val, the map
the files give, metrics when known, how to load the files, the method's paper (BibTeX) and a license line.
A method class may carry its own ``citation`` (a BibTeX string); the built-in methods' are below.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: BibTeX of the paper of each built-in method (by class name).
CITATIONS: dict[str, str] = {
    "CAM": """@inproceedings{zhou2016learning,
  title={Learning Deep Features for Discriminative Localization},
  author={Zhou, Bolei and Khosla, Aditya and Lapedriza, Agata and Oliva, Aude and Torralba, Antonio},
  booktitle={Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages={2921--2929},
  year={2016}
}""",
    "BAS": """@inproceedings{wu2022background,
  title={Background Activation Suppression for Weakly Supervised Object Localization},
  author={Wu, Pingyu and Zhai, Wei and Cao, Yang},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages={14248--14257},
  year={2022}
}""",
    "BCAM": """@article{zhu2023background,
  title={Background-aware Classification Activation Map for Weakly Supervised Object Localization},
  author={Zhu, Lei and She, Qi and Chen, Qian and Meng, Xiangxi and Geng, Mufeng and Jin, Lujia and Jiang, Zhe
          and Qiu, Bin and You, Yunfei and Zhang, Yibao and Ren, Qiushi and Lu, Yanye},
  journal={IEEE Transactions on Pattern Analysis and Machine Intelligence},
  volume={45},
  number={12},
  pages={14175--14191},
  year={2023}
}""",
    "ORNet": """@inproceedings{xie2021online,
  title={Online Refinement of Low-Level Feature Based Activation Map for Weakly Supervised Object Localization},
  author={Xie, Jinheng and Luo, Cheng and Zhu, Xiangping and Jin, Ziqi and Lu, Weizeng and Shen, Linlin},
  booktitle={Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  pages={132--141},
  year={2021}
}""",
}

#: The localisation map each built-in method's test path uses (what the exported ``maps`` output is).
MAP_DESCRIPTIONS: dict[str, str] = {
    "CAM": "the class activation map of the top-1 class (classifier weights applied to the last features)",
    "BAS": "the foreground prediction map of the top-1 class (mean of the top-k maps when `top_k > 1`)",
    "BCAM": "the object map of the top-1 class (the official gradient map, or `W_o F + b_o` with "
            "`localization_map: plain`; object - background with `swept_map: difference`)",
    "ORNet": "the class-agnostic sigmoid map of the U-Net generator; the class comes from the evaluator "
             "(phase `refine`) or the gated classifier (phase `coarse`)",
}

LIBRARY_LICENSE = ("The wsol_lightning code is MIT-licensed; these weights are the model owner's and keep the "
                   "terms of their training data and of any pretrained backbone weights they started from.")


def citation_of(cls: type) -> str | None:
    """The BibTeX of ``cls``'s paper: its ``citation`` attribute, else :data:`CITATIONS`, else ``None``."""
    return getattr(cls, "citation", None) or CITATIONS.get(cls.__name__)


def _classes_line(names: Sequence[str] | None, num_classes: Any) -> str:
    if not names:
        return f"{num_classes} (names not stored)"
    shown = ", ".join(f"`{n}`" for n in list(names)[:50])
    return f"{len(names)}: {shown}" + (", ..." if len(names) > 50 else "")


def _metrics_table(metrics: Mapping[str, Any] | None) -> str:
    if not metrics:
        return "No metrics were given when this folder was written (`save_pretrained(metrics=...)`, " \
               "`wsol export --metrics`)."
    rows = "\n".join(f"| `{k}` | {float(v):.2f} |" if isinstance(v, (int, float)) else f"| `{k}` | {v} |"
                     for k, v in metrics.items())
    return "| metric | value |\n|---|---|\n" + rows


def _usage(method: str, files: Sequence[str]) -> str:
    parts = []
    if "model.safetensors" in files:
        parts.append(f"""```python
from wsol_lightning.methods import {method}
model = {method}.from_pretrained("path/or/hub-repo-id")   # safetensors only, never unpickles
prediction = model.predict_step({{"image": images}}, 0)     # logits, top-1 class, maps in [0, 1], boxes
```""")
    if "model.onnx" in files:
        parts.append("""```python
import onnxruntime as ort
session = ort.InferenceSession("model.onnx")
logits, maps, raw_maps = session.run(None, {"images": images})  # normalised (B, 3, H, W) float32
```""")
    if "model.torchscript.pt" in files:
        parts.append("""```python
import torch
logits, maps, raw_maps = torch.jit.load("model.torchscript.pt")(images)
```""")
    return "\n\n".join(parts)


def _graph_note(files: Sequence[str]) -> str:
    note = "`config.json` / `wsol.json` hold the settings above (JSON)."
    if "model.onnx" in files or "model.torchscript.pt" in files:
        note += (" The graph's input `images` is a float32 batch `(B, 3, H, W)` of RGB images resized to the eval "
                 "size and normalised with the mean/std above; its outputs are `logits` `(B, C)`, `maps` "
                 "`(B, H, W)` (the map of the top-1 class upsampled to the input size and min-max normalised to "
                 "[0, 1], as `wsol predict` gives it: threshold it at the operating threshold for boxes) and "
                 "`raw_maps` `(B, h, w)` (the same map before upsampling).")
    return note


def card_text(class_name: str, init_args: Mapping[str, Any], settings: Mapping[str, Any],
              metrics: Mapping[str, Any] | None, files: Sequence[str], citation: str | None,
              license_line: str = LIBRARY_LICENSE) -> str:
    """The Markdown body of the card (no YAML header).

    Args:
        class_name: the method's class name (``"CAM"``).
        init_args: the method's constructor arguments.
        settings: the prediction settings (``class_names``, ``image_size``, ``mean``, ``std``,
            ``operating_threshold``, ``map_interpolation``).
        metrics: ``{name: value}`` or ``None``.
        files: the files of the folder.
        citation: BibTeX or ``None``.
        license_line: the license sentence.

    """
    backbone = init_args.get("backbone", "?")
    threshold = settings.get("operating_threshold")
    size = settings.get("image_size")
    rows = [
        ("method", f"`{class_name}`" + (f" (phase `{init_args['phase']}`)" if "phase" in init_args else "")),
        ("backbone", f"`{backbone}` (timm)"),
        ("classes", _classes_line(settings.get("class_names"), init_args.get("num_classes"))),
        ("eval image size", f"{size} x {size}, resized straight (no crop)" if size else "not stored"),
        ("normalisation", f"mean {settings.get('mean')}, std {settings.get('std')}"
         if settings.get("mean") else "not stored (ImageNet's is the usual one)"),
        ("operating threshold", f"{threshold:.3f} (stored with the weights; `wsol fit` chooses it on val)"
         if isinstance(threshold, float) else "not chosen yet"),
        ("map upsampling", f"`{settings.get('map_interpolation', 'bicubic')}`, then min-max to [0, 1]"),
        ("map", MAP_DESCRIPTIONS.get(class_name, "the method's localisation map of the top-1 class")),
    ]
    table = "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    cite = f"```bibtex\n{citation}\n```" if citation else "See the method's README in wsol_lightning."
    return f"""# {class_name} ({backbone}) for weakly supervised object localization

A `wsol_lightning` model: an image classifier trained with image labels only, whose
localisation map gives boxes (threshold the map at the operating threshold, box every contour) and masks.

## Model details

{table}

## Metrics

{_metrics_table(metrics)}

## Files

{chr(10).join(f"- `{f}`" for f in files)}

{_graph_note(files)}

## Usage

{_usage(class_name, files)}

## Citation

{cite}

## License

{license_line}
"""


def build_card(class_name: str, init_args: Mapping[str, Any], settings: Mapping[str, Any],
               metrics: Mapping[str, Any] | None, files: Sequence[str], citation: str | None,
               license: str = "other") -> Any:
    """A :class:`huggingface_hub.ModelCard` (metadata: library, license, tags) with :func:`card_text`.

    Args:
        class_name: the method's class name.
        init_args: constructor arguments.
        settings: prediction settings.
        metrics: known metrics or ``None``.
        files: the folder's files.
        citation: BibTeX or ``None``.
        license: the Hub license id of the weights (``"other"`` unless the owner says, e.g. ``"mit"``).

    """
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(library_name="wsol_lightning", license=license, pipeline_tag="image-classification",
                         tags=["weakly-supervised-object-localization", "wsol", class_name.lower(),
                               str(init_args.get("backbone", "")), "pytorch", "lightning"])
    body = card_text(class_name, init_args, settings, metrics, files, citation)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
