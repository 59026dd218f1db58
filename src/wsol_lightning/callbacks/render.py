"""Pure drawing helpers: map overlays with boxes, image grids and metric-curve figures.

Everything returns ``uint8`` RGB numpy arrays ``(H, W, 3)`` that any logger (W&B, TensorBoard) or
``PIL.Image.save`` accepts. Figures use matplotlib's object API with the Agg canvas, so importing this
module never changes the user's pyplot backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

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


def colorize(scoremap: np.ndarray) -> np.ndarray:
    """``(H, W)`` map in [0, 1] -> ``(H, W, 3)`` uint8 RGB with the jet colour map."""
    u = (np.clip(np.nan_to_num(scoremap), 0, 1) * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def draw_boxes(image: np.ndarray, boxes: np.ndarray | Tensor | None, colour: tuple[int, int, int],
               thickness: int = 1) -> np.ndarray:
    """Draw inclusive ``x0, y0, x1, y1`` boxes ``(n, 4)`` on a copy of ``image`` ``(H, W, 3)`` uint8."""
    out = np.ascontiguousarray(image.copy())
    if boxes is None:
        return out
    for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.int64).reshape(-1, 4).tolist():
        if x1 <= x0 and y1 <= y0:  # the (0, 0, 0, 0) "no box" placeholder
            continue
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thickness)
    return out


def overlay(image: np.ndarray, scoremap: np.ndarray, gt_boxes: np.ndarray | Tensor | None = None,
            pred_boxes: np.ndarray | Tensor | None = None, alpha: float = 0.5) -> np.ndarray:
    """Blend a map onto an image and draw GT (green) and predicted (red) boxes.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        scoremap: ``(H, W)`` float map in [0, 1] (same frame as ``image``).
        gt_boxes: optional ``(n, 4)`` inclusive boxes.
        pred_boxes: optional ``(k, 4)`` inclusive boxes.
        alpha: weight of the colourised map.

    Returns:
        ``(H, W, 3)`` uint8 RGB.

    """
    if scoremap.shape != image.shape[:2]:
        raise ValueError(f"map {scoremap.shape} and image {image.shape[:2]} differ in size")
    blended = cv2.addWeighted(image, 1.0 - alpha, colorize(scoremap), alpha, 0.0)
    thickness = max(1, round(min(image.shape[:2]) / 112))
    blended = draw_boxes(blended, gt_boxes, GT_COLOUR, thickness)
    return draw_boxes(blended, pred_boxes, PRED_COLOUR, thickness)


def upscale(image: np.ndarray, min_side: int = 128) -> np.ndarray:
    """Enlarge ``image`` by the least integer factor giving a short side >= ``min_side`` (nearest)."""
    factor = -(-min_side // max(1, min(image.shape[:2])))
    if factor <= 1:
        return image
    return cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)


def make_grid(tiles: Sequence[np.ndarray], ncols: int = 4, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile equally sized ``(H, W, 3)`` uint8 images row-major into one image with ``pad`` pixels between."""
    if not tiles:
        raise ValueError("make_grid needs at least one tile")
    h, w = tiles[0].shape[:2]
    ncols = max(1, min(ncols, len(tiles)))
    nrows = -(-len(tiles) // ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), fill, dtype=np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, ncols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y : y + h, x : x + w] = tile
    return grid


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
