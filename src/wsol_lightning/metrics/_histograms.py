"""Pixel-metric math (PxAP, PIoU) from score histograms; re-exported by :mod:`.functional`."""

from __future__ import annotations

import numpy as np

from wsol_lightning.metrics._checks import ArrayLike, to_numpy


def pixel_histograms(maps: ArrayLike, masks: ArrayLike,
                     thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Histograms of map values on object and background pixels (ignored pixels, 255, dropped).

    Bins are ``[e_j, e_{j+1})`` over edges ``thresholds + [1.0, 2.0, 3.0]`` (numpy ``histogram``
    semantics, compared in float64), so a score of exactly 1.0 falls in ``[1, 2)``.

    Args:
        maps: ``(B, H, W)`` float maps in [0, 1].
        masks: ``(B, H, W)`` uint8 masks, 1 = object, 0 = background, 255 = ignored.
        thresholds: ``(T,)`` float64 grid.

    Returns:
        ``(hist_pos, hist_neg)``, each ``(T + 2,)`` int64.

    """
    edges = np.append(np.asarray(thresholds, np.float64), [1.0, 2.0, 3.0])
    values = to_numpy(maps).astype(np.float64).ravel()
    labels = to_numpy(masks).ravel()
    keep = labels != 255
    bins = np.searchsorted(edges, values[keep], side="right") - 1
    n_bins = edges.size - 1
    idx = bins + n_bins * (labels[keep] == 1)
    counts = np.bincount(idx, minlength=2 * n_bins).astype(np.int64)
    return counts[n_bins:], counts[:n_bins]


def precision_recall_from_histograms(hist_pos: ArrayLike, hist_neg: ArrayLike) -> dict[str, np.ndarray]:
    """Pixel counts at the descending operating points ``(2.0, 1.0, t_{T-1}, ..., t_0)``.

    Returns:
        dict of ``(T + 2,)`` float64 arrays ``tp``, ``fp``, ``fn``, ``precision`` (NaN where nothing is
        predicted) and ``recall``.

    """
    pos = to_numpy(hist_pos).astype(np.float64)
    neg = to_numpy(hist_neg).astype(np.float64)
    tp = pos[::-1].cumsum()
    fp = neg[::-1].cumsum()
    fn = pos.sum() - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
        recall = tp / (tp + fn)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall}


def pxap_from_histograms(hist_pos: ArrayLike, hist_neg: ArrayLike) -> float:
    """PxAP in percent: ``100 * sum_k precision_k * (recall_k - recall_{k-1})`` over points with predictions.

    Raises:
        ValueError: no object pixel, or no predicted pixel at all.

    """
    c = precision_recall_from_histograms(hist_pos, hist_neg)
    if ((c["tp"] + c["fn"]) <= 0).all():
        raise ValueError("PxAP: no object (mask == 1) pixel in the evaluated set.")
    if ((c["tp"] + c["fp"]) <= 0).all():
        raise ValueError("PxAP: no pixel predicted positive in the evaluated set.")
    nonzero = (c["tp"] + c["fp"]) != 0
    return float((c["precision"][1:] * np.diff(c["recall"]))[nonzero[1:]].sum() * 100)


def piou_from_histograms(hist_pos: ArrayLike, hist_neg: ArrayLike) -> float:
    """PIoU in percent: ``100 * max_k TP_k / (TP_k + FP_k + FN_k)`` over the same operating points."""
    c = precision_recall_from_histograms(hist_pos, hist_neg)
    denom = c["tp"] + c["fp"] + c["fn"]
    if (denom <= 0).all():
        raise ValueError("PIoU: no object or predicted pixel in the evaluated set.")
    return float(np.max(np.where(denom > 0, c["tp"] / np.where(denom > 0, denom, 1), 0.0)) * 100)
