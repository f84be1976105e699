"""Stage 1 of VHR mode: each date's bands on 0..1, and the second date fitted onto the first
(Canty's radcal: IR-MAD invariant pixels, a reduced-major-axis fit), shared with the 10 m path."""

from __future__ import annotations

from typing import Any

import numpy as np

from campwatch.errors import GridMismatchError
from campwatch.normalise import fit_irmad, radcal_from_mad
from campwatch.scene import Scene
from campwatch.vhr.common import fill_invalid

__all__ = ["normalise_to", "rgb_stack"]


def rgb_stack(scene: Scene) -> np.ndarray:
    """Red, green, blue (and NIR when present) of a VHR scene, scaled to 0..1 per scene.

    Each band is divided by its own 99th percentile over valid pixels (a "white patch"
    balance: the brightest surfaces, concrete and light roofs, are taken as neutral), so
    uint8 and uint16 products and different sensors' colour casts look alike.  Invalid
    pixels take the value of their nearest valid neighbour (the valid mask still travels
    with the scene).

    Parameters
    ----------
    scene : Scene
        Needs ``red``, ``green`` and ``blue``; ``nir`` is used when present.

    Returns
    -------
    (B, M, N) float32 ndarray
        B is 3 (red, green, blue) or 4 (with nir).

    Examples
    --------
    >>> from affine import Affine
    >>> from campwatch.grid import Grid
    >>> g = Grid((2, 2), Affine(0.5, 0, 0, 0, -0.5, 0), "EPSG:32652")
    >>> d = np.array([[[10, 20], [30, 200]], [[10, 20], [30, 100]], [[5, 5], [5, 5]]], np.float32)
    >>> s = Scene(d, ("red", "green", "blue"), g, np.ones((2, 2), bool))
    >>> rgb_stack(s).shape, float(rgb_stack(s).max()) <= 1.0
    ((3, 2, 2), True)
    """
    scene.require(["red", "green", "blue"], method="VHR mode")
    names = ["red", "green", "blue"] + (["nir"] if scene.has("nir") else [])
    data = np.stack([scene.band(n) for n in names]).astype(np.float32)
    valid = scene.valid & np.all(np.isfinite(data), axis=0)
    data = fill_invalid(data, valid)
    ref = data[:, valid] if valid.any() else data.reshape(data.shape[0], -1)
    scale = np.percentile(ref, 99.0, axis=1) if ref.size else np.ones(data.shape[0])
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    return np.clip(data / scale[:, None, None], 0.0, 1.0).astype(np.float32)


def normalise_to(reference: np.ndarray, moving: np.ndarray, valid: np.ndarray, *,
                 p_no_change: float = 0.95) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit ``moving`` band by band onto ``reference`` (gain and offset) on invariant pixels.

    Canty's *radcal*, shared with the 10 m path (:mod:`campwatch.normalise`): IR-MAD
    (:func:`~campwatch.normalise.fit_irmad`) gives each pixel a chi-square probability of
    no change, and a reduced-major-axis fit (gain = σ ratio) over the pixels with
    ``P(no change) > p_no_change`` (:func:`~campwatch.normalise.radcal_from_mad`) maps each
    band of ``moving`` onto ``reference``.  It treats both dates as noisy, so a weak
    correlation between dates (another sensor, season or sun angle) does not shrink the gain
    towards 0 as an ordinary least-squares slope does; and unlike radcal's orthogonal
    regression it does not depend on the bands' units, so it does not run off either.  With fewer than
    64 invariant pixels the bands are matched by mean and standard deviation over all
    valid pixels instead (``method`` says which).

    Parameters
    ----------
    reference, moving : (B, M, N) ndarray
    valid : (M, N) bool ndarray
    p_no_change : float
        The no-change probability a pixel needs to be invariant (radcal's 0.95).

    Returns
    -------
    normalised : (B, M, N) float32 ndarray
        A new array; ``moving`` is not modified.
    fit : dict
        ``gain`` and ``offset`` per band (``normalised = gain * moving + offset``),
        ``method`` (``"irmad-radcal"`` or ``"mean-std"``), ``invariant_fraction`` (of the
        valid pixels), ``canonical_correlations`` and ``stable_pixels``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.random((3, 50, 50)).astype(np.float32)
    >>> mov = 0.5 * ref + 0.2
    >>> out, fit = normalise_to(ref, mov, np.ones((50, 50), bool))
    >>> bool(np.allclose(out, ref, atol=1e-4)), [round(g, 2) for g in fit["gain"]], fit["method"]
    (True, [2.0, 2.0, 2.0], 'irmad-radcal')
    """
    ref = np.asarray(reference, dtype=np.float64)
    mov = np.asarray(moving, dtype=np.float64)
    if ref.shape != mov.shape:
        raise GridMismatchError(f"normalise_to needs arrays of one shape, got {ref.shape} and {mov.shape}")
    valid = np.asarray(valid, dtype=bool)
    nb = ref.shape[0]
    record: dict[str, Any] = {"gain": [1.0] * nb, "offset": [0.0] * nb, "method": "none", "invariant_fraction": 0.0,
                              "canonical_correlations": None, "stable_pixels": 0}
    n_valid = int(valid.sum())
    if n_valid < 16:
        return mov.astype(np.float32), record
    names = tuple(f"b{i}" for i in range(nb))
    windows = lambda: [(mov, ref, valid)]  # noqa: E731 - x = moving, y = reference
    fitted: tuple[np.ndarray, np.ndarray] | None = None
    try:
        mad = fit_irmad(windows, names)
        rel = radcal_from_mad(windows, mad, p_no_change=p_no_change)
        used = round(float(np.min(rel.used_fraction)) * n_valid)
        record["canonical_correlations"] = [round(float(r), 4) for r in mad.rho]
        if used >= 64:
            fitted = np.asarray(rel.gain, float), np.asarray(rel.offset, float)
            record.update(method="irmad-radcal", invariant_fraction=round(used / n_valid, 4), stable_pixels=used)
    except (ValueError, np.linalg.LinAlgError):
        pass
    if fitted is None:  # no invariant pixels to fit on: match the moments of the whole scene
        r, m = ref[:, valid], mov[:, valid]
        sd = m.std(axis=1)
        g = np.where(sd > 1e-9, r.std(axis=1) / np.maximum(sd, 1e-12), 1.0)
        fitted = g, r.mean(axis=1) - g * m.mean(axis=1)
        record.update(method="mean-std", stable_pixels=n_valid)
    gain, offset = fitted
    out = (mov * gain[:, None, None] + offset[:, None, None]).astype(np.float32)
    record.update(gain=[float(g) for g in gain], offset=[float(o) for o in offset])
    return out, record
