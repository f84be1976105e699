"""Accuracy of a change mask against reference labels: confusion counts and metrics.

Pure module (numpy and :mod:`campwatch.errors` only), so the view may use it too
(:func:`campwatch.plot.show_confusion` titles its map with these scores).  Counts are
plain integers so they can be *summed* over cities before the metrics are computed
(pooled scores, as OSCD papers report them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from campwatch.errors import GridMismatchError, InvalidSceneError

__all__ = ["Confusion", "confusion", "labels_to_bool", "require_change_mask"]


@dataclass(frozen=True)
class Confusion:
    """Pixel counts: true/false positives and negatives, over pixels valid in both inputs.

    Examples
    --------
    >>> c = Confusion(tp=8, fp=2, fn=2, tn=88)
    >>> round(c.precision, 2), round(c.recall, 2), round(c.f1, 2), round(c.iou, 3), round(c.oa, 2)
    (0.8, 0.8, 0.8, 0.667, 0.96)
    >>> round(c.kappa, 3)
    0.778
    >>> (c + c).tp
    16
    """

    tp: int
    fp: int
    fn: int
    tn: int

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @staticmethod
    def _div(a: float, b: float) -> float:
        return a / b if b else 0.0

    @property
    def precision(self) -> float:
        return self._div(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return self._div(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        return self._div(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def iou(self) -> float:
        return self._div(self.tp, self.tp + self.fp + self.fn)

    @property
    def oa(self) -> float:
        return self._div(self.tp + self.tn, self.n)

    @property
    def kappa(self) -> float:
        n = self.n
        if not n:
            return 0.0
        po = self.oa
        pe = ((self.tp + self.fp) * (self.tp + self.fn) + (self.fn + self.tn) * (self.fp + self.tn)) / (n * n)
        return self._div(po - pe, 1 - pe)

    def to_dict(self) -> dict[str, Any]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn, "precision": round(self.precision, 6),
                "recall": round(self.recall, 6), "f1": round(self.f1, 6), "iou": round(self.iou, 6),
                "kappa": round(self.kappa, 6), "oa": round(self.oa, 6)}


def labels_to_bool(labels: np.ndarray, *, change: int = 2, no_change: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(change, valid) boolean arrays from a label raster (OSCD: 1 no change, 2 change).

    Examples
    --------
    >>> ch, ok = labels_to_bool(np.array([[1, 2, 0]]))
    >>> ch.tolist(), ok.tolist()
    ([[False, True, False]], [[True, True, False]])
    """
    return labels == change, (labels == change) | (labels == no_change)


def require_change_mask(mask: np.ndarray, *, name: str) -> None:
    """Refuse a prediction that is not a campwatch change mask (0 no change, 1 change, 255 no data),
    such as a reflectance band or a score passed by mistake: it would score as F1 0 without a word."""
    if not np.isin(mask, (0, 1, 255)).all():
        vals = np.unique(mask[~np.isin(mask, (0, 1, 255))])
        shown = ", ".join(f"{v:g}" for v in vals[:5].astype(float)) + (" ..." if vals.size > 5 else "")
        raise InvalidSceneError(f"{name}: not a change mask (values 0, 1 and 255 only); it holds {shown}. Give the "
                                "change_mask.tif that compare wrote, not a band or change_score.tif")


def confusion(pred: np.ndarray, truth: np.ndarray, *, valid: np.ndarray | None = None) -> Confusion:
    """Confusion counts of boolean ``pred`` against boolean ``truth`` where ``valid``.

    Examples
    --------
    >>> confusion(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool)).to_dict()["f1"]
    0.5
    """
    if pred.shape != truth.shape:
        raise GridMismatchError(f"prediction shape {pred.shape} differs from label shape {truth.shape}; "
                                "both must lie on one grid")
    ok = np.ones(pred.shape, bool) if valid is None else valid
    p, t = pred.astype(bool) & ok, truth.astype(bool) & ok
    tp = int((p & t).sum())
    fp = int((p & ~t).sum())
    fn = int((~p & t).sum())
    return Confusion(tp, fp, fn, int(ok.sum()) - tp - fp - fn)
