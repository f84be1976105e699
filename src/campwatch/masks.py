"""Validity masks: nodata, zeros and saturation, L2A scene classification, user masks, clouds.

Pure module: arrays (or in-memory :class:`~campwatch.scene.Scene` objects) in,
boolean masks out.  :func:`nodata_mask`, :func:`scl_valid` and :func:`user_mask_valid`
return True = valid; :func:`cloud_mask` returns True = cloud.  Nothing here opens a file.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from campwatch.errors import InsufficientDataError
from campwatch.grid import GEOD, Grid

if TYPE_CHECKING:
    from campwatch.scene import Scene

__all__ = [
    "CLOUD_TEST_BANDS",
    "aoi_mask",
    "SCL_INVALID",
    "cloud_flags",
    "cloud_fraction",
    "cloud_mask",
    "grow_square",
    "invalidate",
    "mask_clouds",
    "nodata_mask",
    "scl_valid",
    "qa_pixel_valid",
    "QA_PIXEL_INVALID_BITS",
    "user_mask_valid",
]

#: The bands the spectral cloud test needs; ``swir16`` and ``cirrus`` are used when present.
CLOUD_TEST_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir")

#: Sentinel-2 L2A scene classification values treated as invalid:
#: 0 no data, 1 saturated/defective, 3 cloud shadow, 8 cloud medium probability,
#: 9 cloud high probability, 10 thin cirrus, 11 snow/ice.
SCL_INVALID: tuple[int, ...] = (0, 1, 3, 8, 9, 10, 11)


def nodata_mask(dn: np.ndarray, *, nodata: float | None = None, zero_is_nodata: bool = False,
                saturation: float | None = None) -> np.ndarray:
    """True where a band's raw value is usable.

    Parameters
    ----------
    dn : (M, N) ndarray
        Raw digital numbers (or reflectance) of one band.
    nodata : float, optional
        The file's nodata value.
    zero_is_nodata : bool
        Treat 0 as nodata (unsigned products such as Sentinel-2 DN use 0 as fill).
    saturation : float, optional
        Values at or above this are saturated.

    Examples
    --------
    >>> nodata_mask(np.array([[0, 5, 65535]]), zero_is_nodata=True, saturation=65535).tolist()
    [[False, True, False]]
    """
    ok = np.isfinite(dn)
    if nodata is not None and not np.isnan(nodata):
        ok &= dn != nodata
    if zero_is_nodata:
        ok &= dn != 0
    if saturation is not None:
        ok &= dn < saturation
    return ok


def scl_valid(scl: np.ndarray, *, invalid: tuple[int, ...] = SCL_INVALID) -> np.ndarray:
    """True where the L2A scene classification is neither nodata, cloud, shadow, cirrus nor snow.

    Examples
    --------
    >>> scl_valid(np.array([[4, 9, 3, 5]], dtype=np.uint8)).tolist()
    [[True, False, False, True]]
    """
    return ~np.isin(scl, invalid)


#: Landsat Collection 2 QA_PIXEL bits that make a pixel unusable: 0 fill (also Landsat 7's
#: SLC-off gaps), 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud shadow, 5 snow.
QA_PIXEL_INVALID_BITS: tuple[int, ...] = (0, 1, 2, 3, 4, 5)


def qa_pixel_valid(qa: np.ndarray, *, bits: tuple[int, ...] = QA_PIXEL_INVALID_BITS) -> np.ndarray:
    """True where a Landsat Collection 2 QA_PIXEL value sets none of ``bits``.

    Examples
    --------
    >>> qa_pixel_valid(np.array([21824, 1, 22280, 23888], dtype=np.uint16)).tolist()  # clear, fill, cloud, shadow
    [True, False, False, False]
    """
    mask = sum(1 << b for b in bits)
    return (qa.astype(np.uint32) & mask) == 0


def user_mask_valid(mask: np.ndarray, *, invalid: Literal["nonzero", "zero"] = "nonzero") -> np.ndarray:
    """True where a user-supplied mask raster marks a pixel as usable.

    Parameters
    ----------
    mask : (M, N) ndarray
        The user's mask, already on the scene's grid (nearest-neighbour resampled).
        NaN (outside the mask raster) counts as valid: the mask only removes pixels.
    invalid : {"nonzero", "zero"}
        Which values mark pixels to drop.  The default, ``"nonzero"``, treats any
        nonzero value as invalid (a mask drawn over clouds, glare or known artefacts).

    Examples
    --------
    >>> user_mask_valid(np.array([[0, 1, 255]])).tolist()
    [[True, False, False]]
    >>> user_mask_valid(np.array([[0, 1, 255]]), invalid="zero").tolist()
    [[False, True, True]]
    """
    m = np.asarray(mask)
    if m.dtype.kind == "f":
        finite = np.isfinite(m)
        flagged = finite & ((m != 0) if invalid == "nonzero" else (m == 0))
    else:
        flagged = (m != 0) if invalid == "nonzero" else (m == 0)
    return ~flagged


def cloud_mask(scene: Scene, *, hot_threshold: float = 0.0, strong_hot_threshold: float = 0.04,
               bright_threshold: float = 0.3, whiteness_threshold: float = 0.7, cirrus_threshold: float = 0.01,
               cirrus_haze_threshold: float = 0.0025, majority_px: int = 2) -> np.ndarray:
    """A spectral cloud test for imagery without an L2A scene classification.

    Tests in reflectance (TOA or BOA), adapted from Fmask (Zhu & Woodcock 2012) and
    reduced to bands every optical sensor has:

    * **haze** (HOT, ``blue - 0.5 * red - 0.08 > hot_threshold``) over vegetated pixels
      (NDVI > 0.2): clear land lies on a line where blue grows more slowly than red,
      and haze or thin cloud lifts blue above it.  When the scene has the Sentinel-2
      cirrus band, haze must also show ``cirrus > cirrus_haze_threshold``: low winter
      sun lifts TOA blue over clear vegetation too (Paris in November would otherwise
      be called hazy).
    * **strong haze**: ``HOT > strong_hot_threshold`` on any surface.
    * **bright and white**: visible mean above ``bright_threshold``, a flat visible
      spectrum (whiteness ``sum |b - mean| / mean`` below ``whiteness_threshold``)
      and NDVI below 0.4: thick cloud.
    * **cirrus**: B10 above ``cirrus_threshold``, when present.
    * When ``swir16`` is present, snow (NDSI above 0.6 with NIR above 0.11) is not
      called cloud.

    Finally a majority filter (a pixel is cloud when more than half of its
    ``(2 * majority_px + 1)`` square neighbourhood passed) removes isolated bright
    roofs and fills pinholes inside cloud.  :func:`mask_clouds` then grows the mask.

    Measured (``benchmarks/clouds_coreg.py``): IoU against the hand labels of the
    two ``s2-l2a-clouds`` chips about 0.73 pooled with :func:`mask_clouds`'s
    default 2 px buffer (precision near 1, thin cloud is missed); the two fully cloudy
    Slovenia dates are flagged at 98 % and 100 % with the buffer (89 % and 98 %
    without it); the clear OSCD cities mostly under 2 %.  Limits: no thermal band
    and no parallax test, so bright white roofs at low sun and thin haze
    over bare ground are the weak cases; no cloud-shadow test.

    Parameters
    ----------
    scene : Scene
        Needs ``blue``, ``green``, ``red`` and ``nir``; uses ``swir16`` and ``cirrus``
        when present.
    hot_threshold, strong_hot_threshold, bright_threshold, whiteness_threshold, \
cirrus_threshold, cirrus_haze_threshold : float
        Test thresholds in reflectance units (see above).
    majority_px : int
        Radius of the majority filter; 0 turns it off.

    Returns
    -------
    clouds : (M, N) bool ndarray
        True where a valid pixel looks like cloud.  Invalid pixels are False.

    Examples
    --------
    >>> from campwatch.io import read_scene
    >>> clear = read_scene("data/sample_tiles/rennes/imgs_1", bands=["blue", "green", "red", "nir"])
    >>> float(cloud_mask(clear).mean()) < 0.05
    True
    """
    scene.require(CLOUD_TEST_BANDS, method="the spectral cloud test")
    # float32 throughout (the reflectances are float32), one compiled pass per pixel;
    # a pixel within a float32 rounding of a threshold may fall on the other side.
    from campwatch._kernels import cloud_spectral

    f32 = np.float32
    th = np.array([hot_threshold, strong_hot_threshold, bright_threshold, whiteness_threshold, cirrus_threshold,
                   cirrus_haze_threshold], dtype=f32)
    blue, green, red, nir = (scene.band(b) for b in CLOUD_TEST_BANDS)
    has_cirrus, has_swir = scene.has("cirrus"), scene.has("swir16")
    # the spectral test already leaves invalid pixels False
    clouds = cloud_spectral(blue, green, red, nir, scene.band("cirrus") if has_cirrus else blue,
                            scene.band("swir16") if has_swir else blue, scene.valid, th, has_cirrus, has_swir)
    if majority_px > 0:
        from campwatch._kernels import majority

        # cloud when more than half of the square neighbourhood (edges repeated) passed
        clouds = majority(clouds, scene.valid, majority_px)
    return clouds


def grow_square(mask: np.ndarray, r: int) -> np.ndarray:
    """``mask`` dilated by a ``(2r + 1)`` square, outside the array False: the same as
    ``ndimage.binary_dilation(mask, np.ones((3, 3)), iterations=r)``, done separably.

    Examples
    --------
    >>> m = np.zeros((5, 5), bool); m[0, 0] = True
    >>> grow_square(m, 1).astype(int).tolist()[:3]
    [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]]
    """
    out = mask.copy()
    if r <= 0:
        return out
    tmp = mask.copy()
    for k in range(1, r + 1):
        tmp[k:] |= mask[:-k]
        tmp[:-k] |= mask[k:]
    out[:] = tmp
    for k in range(1, r + 1):
        out[:, k:] |= tmp[:, :-k]
        out[:, :-k] |= tmp[:, k:]
    return out


def cloud_flags(scene: Scene, *, buffer_px: int = 2, **thresholds: float) -> np.ndarray:
    """(M, N) bool: the pixels :func:`mask_clouds` makes invalid (:func:`cloud_mask` grown
    by ``buffer_px``, valid pixels only)."""
    if buffer_px < 0:
        raise ValueError(f"buffer_px must be >= 0, got {buffer_px}")
    clouds = cloud_mask(scene, **thresholds)  # type: ignore[arg-type]
    if buffer_px and clouds.any():
        clouds = grow_square(clouds, buffer_px)
    clouds &= scene.valid
    return clouds


def mask_clouds(scene: Scene, *, buffer_px: int = 2, in_place: bool = False, **thresholds: float) -> Scene:
    """Mark the pixels :func:`cloud_mask` flags (grown by ``buffer_px``) invalid.

    The cloud step of ``compare``, on whole scenes in memory and on each window when streaming.

    Parameters
    ----------
    scene : Scene
        A scene with at least blue, green, red and nir.
    buffer_px : int
        Grow the cloud mask by this many pixels (cloud edges are thin and bright
        halos otherwise leak into change maps).
    in_place : bool
        See :func:`invalidate` (only for a caller that owns ``scene.data``).
    **thresholds : float
        Passed to :func:`cloud_mask`.

    Returns
    -------
    Scene
        :func:`invalidate` of the cloud pixels, with ``meta["cloud_fraction"]``: the fraction of
        previously valid pixels flagged as cloud (after the buffer), and
        ``meta["cloud_test"]`` naming the test and its parameters.

    Examples
    --------
    >>> from campwatch.io import read_scene
    >>> s = mask_clouds(read_scene("data/sample_tiles/rennes/imgs_1", bands=["blue", "green", "red", "nir"]))
    >>> 0.0 <= s.meta["cloud_fraction"] < 0.05
    True
    """
    clouds = cloud_flags(scene, buffer_px=buffer_px, **thresholds)
    fraction = cloud_fraction(int(clouds.sum()), int(scene.valid.sum()))
    masked = invalidate(scene, clouds, in_place=in_place)
    return dataclasses.replace(masked, meta={**scene.meta, "cloud_fraction": fraction,
                                             "cloud_test": cloud_test_info(buffer_px=buffer_px, **thresholds)})


def cloud_fraction(flagged: int, valid: int) -> float:
    """The cloud fraction :func:`mask_clouds` reports: ``flagged`` of the ``valid`` pixels (valid
    before the cloud test), rounded to 6 decimals; 0 when none is valid.  The streaming engine
    gives it the counts it summed over the windows.

    Examples
    --------
    >>> cloud_fraction(1, 3), cloud_fraction(0, 0)
    (0.333333, 0.0)
    """
    return round(flagged / valid, 6) if valid else 0.0


def invalidate(scene: Scene, flags: np.ndarray, *, in_place: bool = False) -> Scene:
    """``scene`` with the ``flags`` pixels invalid: False in ``valid`` and NaN in every band.

    The one way a pipeline step takes pixels out (:func:`mask_clouds`, on a whole scene in
    memory and on each window when streaming).  The other pixels keep their values, so a scene that is
    NaN wherever it is invalid (as read) stays so.

    Parameters
    ----------
    scene : Scene
    flags : (M, N) bool ndarray
        True = make invalid.
    in_place : bool
        Write the NaN into ``scene.data`` itself when it is writeable, instead of into a copy:
        only for a caller that owns the array (the streaming engine's window copies).  By
        default the input is not modified.

    Examples
    --------
    >>> from affine import Affine
    >>> from campwatch.scene import Scene
    >>> s = Scene(np.ones((1, 1, 2), np.float32), ("red",), Grid((1, 2), Affine(10, 0, 0, 0, -10, 0), "EPSG:32652"),
    ...           np.ones((1, 2), bool))
    >>> t = invalidate(s, np.array([[False, True]]))
    >>> t.data.tolist(), t.valid.tolist(), s.data.tolist()
    ([[[1.0, nan]]], [[True, False]], [[[1.0, 1.0]]])
    """
    if not flags.any():
        return scene
    from campwatch._kernels import set_nan

    data = scene.data if in_place and scene.data.flags.writeable else scene.data.copy()
    set_nan(data, flags)
    return dataclasses.replace(scene, data=data, valid=scene.valid & ~flags)


def cloud_test_info(*, buffer_px: int = 2, **thresholds: float) -> dict[str, Any]:
    """How :func:`cloud_flags` was run, as results record it (``meta["cloud_test"]``, summaries)."""
    return {"method": "spectral (HOT, bright-white, cirrus)", "buffer_px": buffer_px, **thresholds}


def aoi_mask(geometry: Any, grid: Grid) -> np.ndarray:
    """(M, N) bool: True inside an EPSG:4326 ``geometry`` (pixel centres), on ``grid``.

    Examples
    --------
    >>> from affine import Affine
    >>> from shapely.geometry import box
    >>> from campwatch.grid import Grid
    >>> g = Grid((4, 4), Affine(0.25, 0, 0, 0, -0.25, 1), "EPSG:4326")
    >>> int(aoi_mask(box(0, 0.5, 0.5, 1), g).sum())
    4
    """
    from rasterio import features
    from rasterio.crs import CRS
    from rasterio.warp import transform_geom

    geo = geometry.__geo_interface__ if hasattr(geometry, "__geo_interface__") else geometry
    if grid.crs != CRS.from_epsg(4326):
        geo = transform_geom("EPSG:4326", grid.crs, geo)
    return features.geometry_mask([geo], out_shape=grid.shape, transform=grid.transform, invert=True)


#: Below this share of the AOI (or, without one, of BEFORE's grid) observed on both dates a pair
#: states no figure: half the area is the point below which the unobserved part could hold more
#: change than the observed one (and the significance rule of ``structures`` uses the same level).
MIN_OBSERVED_FRACTION = 0.5


def coverage(observed: np.ndarray, grid: Grid, *, aoi: Any = None) -> dict[str, Any]:
    """How much of the AOI (or of ``grid`` without one) the ``observed`` pixels cover, in m².

    The AOI's area is its own geodesic area (WGS84), not the part of it that falls on the
    grid: an AOI only partly inside the scenes is partly unobserved.

    Parameters
    ----------
    observed : (M, N) bool ndarray
        Pixels valid on both dates (and inside the AOI).
    grid : Grid
    aoi : AOI or shapely geometry (EPSG:4326), optional

    Returns
    -------
    dict
        ``observed_area_m2``, ``reference_area_m2``, ``observed_fraction`` (in [0, 1]) and
        ``reference`` (``"aoi"`` or ``"grid"``).

    Examples
    --------
    >>> from affine import Affine
    >>> from shapely.geometry import box
    >>> from campwatch.grid import Grid
    >>> g = Grid((10, 10), Affine(0.001, 0, 126.0, 0, -0.001, 39.01), "EPSG:4326")
    >>> c = coverage(np.ones((10, 10), bool), g, aoi=box(126.0, 39.0, 126.02, 39.01))  # half inside the grid
    >>> c["reference"], round(c["observed_fraction"], 2)
    ('aoi', 0.5)
    """
    if observed.shape != grid.shape:
        raise ValueError(f"observed mask shape {observed.shape} does not match the grid {grid.shape}")
    w = np.broadcast_to(grid.pixel_area_m2(), grid.shape)
    observed_m2 = float((w * observed).sum())
    if aoi is None:
        ref_m2, ref = float(w.sum()), "grid"
    else:
        area = getattr(aoi, "area_m2", None)
        ref_m2 = float(area()) if callable(area) else abs(GEOD.geometry_area_perimeter(getattr(aoi, "geometry", aoi))[0])
        ref = "aoi"
    return coverage_of(observed_m2, ref_m2, reference=ref)


def coverage_of(observed_m2: float, reference_m2: float, *, reference: str) -> dict[str, Any]:
    """The :func:`coverage` record from the two areas (for callers that summed them window by window)."""
    frac = min(1.0, observed_m2 / reference_m2) if reference_m2 > 0 else 0.0
    return {"observed_area_m2": round(observed_m2, 1), "reference_area_m2": round(reference_m2, 1),
            "observed_fraction": round(frac, 6), "reference": reference}


def require_coverage(cov: dict[str, Any], *, min_fraction: float, what: str) -> None:
    """Raise :class:`~campwatch.errors.InsufficientDataError` when ``cov`` is below ``min_fraction``.

    ``what`` names the pair (its files or dates) in the message.
    """
    if cov["observed_fraction"] >= min_fraction:
        return
    of = "the AOI" if cov["reference"] == "aoi" else "BEFORE's grid"
    raise InsufficientDataError(
        f"{what}: only {cov['observed_fraction']:.1%} of {of} ({cov['observed_area_m2']:,.0f} of "
        f"{cov['reference_area_m2']:,.0f} m²) is observed on both dates, below the minimum {min_fraction:.0%} "
        "(clouds, no data, or scenes that do not cover it), so no figure is stated; use clearer dates or scenes "
        "that cover the AOI, or lower --min-observed to measure only the observed part")
