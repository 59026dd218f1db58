"""Pure drawing helpers: map overlays with boxes, image grids and metric-curve figures.

Boxes, masks and grids are torchvision's (``draw_bounding_boxes``, ``draw_segmentation_masks``, ``make_grid``);
colour maps are matplotlib's.

Everything returns ``uint8`` RGB numpy arrays ``(H, W, 3)`` that any logger (W&B, TensorBoard) or
``PIL.Image.save`` accepts. Figures use matplotlib's object API with the Agg canvas, so importing this
module never changes the user's pyplot backend.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torchvision
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image as PILImage
from torch import Tensor
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

from wsol_lightning.data.transforms import IMAGENET_MEAN, IMAGENET_STD

#: RGB colours of ground-truth and predicted boxes.
GT_COLOUR = (0, 255, 0)
PRED_COLOUR = (255, 0, 0)


def denormalize(images: Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """Undo the input normalisation.

    Args:
        images: ``(B, 3, H, W)`` float images normalised with ``mean``/``std``.
        mean: per-channel mean used by the transform.
        std: per-channel std used by the transform.

    Returns:
        ``(B, H, W, 3)`` uint8 RGB.

    """
    x = images.detach().float().cpu()
    x = x * torch.tensor(std)[None, :, None, None] + torch.tensor(mean)[None, :, None, None]
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def colorize(scoremap: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """``(H, W)`` map in [0, 1] -> ``(H, W, 3)`` uint8 RGB through a matplotlib colour map (``jet`` by default)."""
    u = (np.clip(np.nan_to_num(scoremap), 0, 1) * 255).astype(np.uint8)
    return _colour_table(cmap)[u]


@functools.lru_cache(maxsize=8)
def _colour_table(cmap: str) -> np.ndarray:
    return (matplotlib.colormaps[cmap](np.arange(256))[:, :3] * 255).round().astype(np.uint8)


@functools.lru_cache(maxsize=1)
def _font_path() -> str | None:
    """A TrueType font for box labels (matplotlib's DejaVu Sans), or ``None`` for PIL's bitmap font."""
    try:
        return font_manager.findfont("DejaVu Sans", fallback_to_default=True)
    except (ValueError, RuntimeError):  # pragma: no cover - a matplotlib without fonts
        return None


def to_chw(image: np.ndarray) -> Tensor:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` uint8 tensor (torchvision's drawing layout)."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)


def to_hwc(image: Tensor) -> np.ndarray:
    """``(3, H, W)`` uint8 tensor -> ``(H, W, 3)`` uint8 array."""
    return np.ascontiguousarray(image.permute(1, 2, 0).numpy())


def draw_boxes(image: np.ndarray, boxes: np.ndarray | Tensor | None, colour: tuple[int, int, int],
               thickness: int = 1, labels: Sequence[str] | None = None) -> np.ndarray:
    """Draw inclusive ``x0, y0, x1, y1`` boxes ``(n, 4)`` on a copy of ``image`` ``(H, W, 3)`` uint8.

    torchvision's ``draw_bounding_boxes``; ``labels`` (one per box) are written in the box's top-left corner on a
    filled background. The ``(0, 0, 0, 0)`` "no box" placeholder is not drawn.
    """
    if boxes is None:
        return image.copy()
    rows = torch.as_tensor(np.asarray(boxes, dtype=np.int64).reshape(-1, 4))
    keep = ~((rows[:, 2] <= rows[:, 0]) & (rows[:, 3] <= rows[:, 1]))
    if not keep.any():
        return image.copy()
    texts = None if labels is None else [t for t, k in zip(labels, keep.tolist()) if k]
    font = _font_path() if texts else None
    size = max(10, round(min(image.shape[:2]) / 25))
    drawn = draw_bounding_boxes(to_chw(image), rows[keep], labels=texts, colors=tuple(colour), width=thickness,
                                font=font, font_size=size if font else None, label_colors="white" if texts else None,
                                label_background_colors=tuple(colour) if texts else None, fill_labels=bool(texts))
    return to_hwc(drawn)


def draw_mask(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = (255, 255, 0),
              alpha: float = 0.4) -> np.ndarray:
    """Tint the ``True`` pixels of a ``(H, W)`` bool mask (torchvision's ``draw_segmentation_masks``)."""
    masks = torch.from_numpy(np.asarray(mask, dtype=bool))[None]
    return to_hwc(draw_segmentation_masks(to_chw(image), masks, alpha=alpha, colors=[tuple(colour)]))


def box_thickness(shape: Sequence[int]) -> int:
    """Box line width for an ``(H, W, ...)`` image: 1 pixel per 112 of the short side, at least 1."""
    return max(1, round(min(shape[:2]) / 112))


def overlay(image: np.ndarray, scoremap: np.ndarray, gt_boxes: np.ndarray | Tensor | None = None,
            pred_boxes: np.ndarray | Tensor | None = None, alpha: float = 0.5,
            pred_labels: Sequence[str] | None = None, mask: np.ndarray | None = None) -> np.ndarray:
    """Blend a map onto an image and draw GT (green) and predicted (red) boxes.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        scoremap: ``(H, W)`` float map in [0, 1] (same frame as ``image``).
        gt_boxes: optional ``(n, 4)`` inclusive boxes.
        pred_boxes: optional ``(k, 4)`` inclusive boxes.
        alpha: weight of the colourised map.
        pred_labels: optional text of each predicted box (e.g. ``"dog 0.93"``).
        mask: optional ``(H, W)`` bool mask tinted over the blend (e.g. the thresholded map).

    Returns:
        ``(H, W, 3)`` uint8 RGB.

    """
    if scoremap.shape != image.shape[:2]:
        raise ValueError(f"map {scoremap.shape} and image {image.shape[:2]} differ in size")
    blended = (image.astype(np.float64) * (1.0 - alpha) + colorize(scoremap) * alpha).round().astype(np.uint8)
    if mask is not None:
        blended = draw_mask(blended, mask)
    thickness = box_thickness(image.shape)
    blended = draw_boxes(blended, gt_boxes, GT_COLOUR, thickness)
    return draw_boxes(blended, pred_boxes, PRED_COLOUR, thickness, pred_labels)


def prediction_overlay(image: np.ndarray, scoremap: np.ndarray, threshold: float, label: str,
                       gt_boxes: np.ndarray | Tensor | None = None,
                       alpha: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A prediction drawn in the image's own frame: the map, its boxes labelled ``label``, GT boxes.

    Args:
        image: ``(H, W, 3)`` uint8 RGB, the original picture.
        scoremap: ``(H, W)`` float map in [0, 1] already in that frame (``predict.to_original_frame``).
        threshold: operating threshold; the mask is binarised as the metrics do.
        label: text of every predicted box, e.g. ``"dog 0.93"``.
        gt_boxes: optional ``(n, 4)`` inclusive GT boxes of the original frame.
        alpha: weight of the colourised map.

    Returns:
        ``(overlay, mask)``: ``(H, W, 3)`` uint8 and the ``(H, W)`` bool mask whose tight outer-contour boxes are
        drawn (the boxes ``wsol predict`` writes to COCO).

    """
    from wsol_lightning.predict import mask_boxes, threshold_mask

    mask = threshold_mask(scoremap, threshold)
    boxes = np.array([[x, y, x + w - 1, y + h - 1] for x, y, w, h in mask_boxes(mask)], dtype=np.int64)
    return overlay(image, scoremap, gt_boxes, boxes.reshape(-1, 4), alpha, [label] * len(boxes)), mask


def upscale_factor(shape: Sequence[int], min_side: int = 128) -> int:
    """The least integer factor giving a short side >= ``min_side`` for an ``(H, W, ...)`` shape (at least 1)."""
    return max(1, -(-min_side // max(1, min(shape[:2]))))


def upscale(image: np.ndarray, min_side: int = 128) -> np.ndarray:
    """Enlarge an ``(H, W, ...)`` image or map by :func:`upscale_factor` (nearest neighbour)."""
    factor = upscale_factor(image.shape, min_side)
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def upscale_boxes(boxes: np.ndarray, factor: int) -> np.ndarray:
    """Inclusive ``(n, 4)`` boxes of an image enlarged ``factor`` times by :func:`upscale` (pixel blocks)."""
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    return boxes * factor + np.array([0, 0, factor - 1, factor - 1])


def make_grid(tiles: Sequence[np.ndarray], ncols: int = 4, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile equally sized ``(H, W, 3)`` uint8 images row-major with ``pad`` pixels around (torchvision's grid)."""
    if not tiles:
        raise ValueError("make_grid needs at least one tile")
    ncols = max(1, min(ncols, len(tiles)))
    grid = torchvision.utils.make_grid([to_chw(t) for t in tiles], nrow=ncols, padding=pad, pad_value=fill)
    return to_hwc(grid)


def jpeg_thumbnail(image: np.ndarray | str | Path, max_width: int = 480, quality: int = 85) -> bytes:
    """JPEG bytes of a picture downscaled to at most ``max_width`` pixels wide (notebooks stay small).

    Args:
        image: ``(H, W, 3)`` uint8 RGB, or the path of an image file.
        max_width: width above which the picture is shrunk (aspect kept, Lanczos).
        quality: JPEG quality.

    """
    picture = PILImage.open(image).convert("RGB") if isinstance(image, (str, Path)) else PILImage.fromarray(image)
    if picture.width > max_width:
        picture = picture.resize((max_width, max(1, round(picture.height * max_width / picture.width))),
                                 PILImage.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def figure_to_array(fig: Figure) -> np.ndarray:
    """Render a matplotlib figure to ``(H, W, 3)`` uint8 RGB."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def box_accuracy_figure(curves: Mapping[str, Tensor | np.ndarray], threshold: float | None = None,
                        title: str = "Box accuracy vs CAM threshold") -> Figure:
    """Plot ``box_acc@d`` (and ``top1_loc@d`` when defined) against ``thresholds`` (``MaxBoxAcc.curves()``).

    Args:
        curves: the output of :meth:`wsol_lightning.metrics.MaxBoxAcc.curves`.
        threshold: operating threshold to mark with a vertical line.
        title: figure title.

    """
    fig = Figure(figsize=(5, 3.5), dpi=100)
    ax = fig.add_subplot()
    t = np.asarray(curves["thresholds"], dtype=np.float64)
    for key in sorted(k for k in curves if k.startswith("box_acc@")):
        values = np.asarray(curves[key], dtype=np.float64)
        ax.plot(t, values, label=f"GT-known BoxAcc IoU≥{key.split('@')[1]}%")
    top1 = [k for k in curves if k.startswith("top1_loc@")]
    if top1:
        key = "top1_loc@50" if "top1_loc@50" in curves else sorted(top1)[0]
        values = np.asarray(curves[key], dtype=np.float64)
        if np.isfinite(values).any():
            ax.plot(t, values, "--", label=f"Top-1 Loc IoU≥{key.split('@')[1]}%")
    if threshold is not None and np.isfinite(threshold):
        ax.axvline(threshold, color="k", lw=0.8, ls=":", label=f"operating threshold {threshold:.3f}")
    ax.set(xlabel="CAM threshold", ylabel="accuracy (%)", title=title, xlim=(0, 1), ylim=(0, 100))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def pixel_pr_figure(curve: Mapping[str, Tensor | np.ndarray], pxap: float | None = None,
                    title: str = "Pixel precision-recall") -> Figure:
    """Plot the pixel PR curve (``PxAP.curve()``): precision against recall, PxAP in the legend."""
    fig = Figure(figsize=(4, 3.5), dpi=100)
    ax = fig.add_subplot()
    recall = np.asarray(curve["recall"], dtype=np.float64)
    precision = np.asarray(curve["precision"], dtype=np.float64)
    ok = np.isfinite(precision) & np.isfinite(recall)
    label = "PR" if pxap is None else f"PxAP {pxap:.1f}%"
    ax.plot(recall[ok], precision[ok], drawstyle="steps-post", label=label)
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def as_numpy_curves(curves: Mapping[str, Tensor | np.ndarray]) -> dict[str, np.ndarray]:
    """Detach a dict of curves to float64 numpy arrays (safe to keep after the metric resets)."""
    return {k: np.asarray(v.detach().cpu() if isinstance(v, Tensor) else v, dtype=np.float64)
            for k, v in curves.items()}
