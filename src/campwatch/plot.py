"""Figures and notebook tables for scenes, change results, growth and timelines.

An optional module: the figure functions need matplotlib (``pip install campwatch[plot]``) and
import it only when called, so ``import campwatch`` stays light; without matplotlib they raise
:class:`~campwatch.errors.MissingDependencyError` naming that fix.  The composite and HTML
functions need numpy only.

Nothing here opens or writes a file: figures are returned (``fig.savefig`` is the caller's).

Composites
    :func:`composite`, :func:`true_colour`, :func:`false_colour` turn a
    :class:`~campwatch.scene.Scene` into an (M, N, 3) float image in [0, 1] by a percentile
    stretch over the *valid* pixels only (no data is 0, black).  :func:`stretch_limits` computes
    one stretch over several dates, so two dates are shown with the same radiometric scale and a
    brightness change is not hidden by stretching each date on its own.
Figures
    :func:`show_scene` (a composite in CRS coordinates, no data grey, optional AOI outline),
    :func:`show_change` (before, after, and change in red, side by side),
    :func:`plot_histogram` (the change-score histogram and the threshold chosen from it),
    :func:`plot_polygons` and :func:`plot_aoi` (outlines over a :func:`show_scene` axes),
    :func:`show_confusion` (a change mask against reference labels), and
    :func:`plot_timeline` (built footprint per date with its uncertainty).  Each takes ``ax=``
    (or ``axes=``) and returns the Axes or Figure it drew on.
Tables
    :func:`html_table` and :func:`html_records` (from :mod:`campwatch.tables`) build the small HTML
    tables notebooks display;
    :func:`growth_html` and :func:`timeline_html` describe a
    :class:`~campwatch.structures.GrowthResult` and a :class:`~campwatch.track.Timeline`, so
    their ``_repr_html_`` is one line.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from campwatch.bench.metrics import confusion, labels_to_bool
from campwatch.detect import NODATA
from campwatch.errors import GridMismatchError, LowValidDataWarning, MissingDependencyError
from campwatch.grid import Grid
from campwatch.io import png_bytes
from campwatch.layers import CLASS_COLOURS
from campwatch.scene import Scene
from campwatch.tables import html_records, html_table

if TYPE_CHECKING:  # pragma: no cover - typing only
    import geopandas as gpd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from campwatch.detect import ChangeResult
    from campwatch.structures import GrowthResult

__all__ = [
    "pyplot",
    "quicklook_png",
    "GROWTH_COLOURS",
    "composite",
    "confusion_rgb",
    "false_colour",
    "growth_html",
    "html_records",
    "html_table",
    "overlay_mask",
    "plot_aoi",
    "plot_histogram",
    "plot_polygons",
    "plot_timeline",
    "show_change",
    "show_confusion",
    "show_scene",
    "stretch_limits",
    "timeline_html",
    "true_colour",
]

#: Outline colour of each growth class (:data:`campwatch.structures.GROWTH_CLASSES`): the report's
#: and the GeoPackage styles' colours (:data:`campwatch.layers.CLASS_COLOURS`).
GROWTH_COLOURS: dict[str, str] = {k: v for k, v in CLASS_COLOURS.items() if k != "change"}
_NODATA_RGB = (0.55, 0.55, 0.55)
_TRUE = ("red", "green", "blue")
_FALSE = ("nir", "red", "green")


def pyplot() -> Any:
    """``matplotlib.pyplot`` with a Hangul-capable fallback font, or a :class:`MissingDependencyError`
    naming the extra to install."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError(
            "campwatch.plot needs matplotlib, which is not installed in this environment; "
            "install it with: pip install 'campwatch[plot]'") from exc
    _hangul_fallback(plt)
    return plt


@functools.cache
def _hangul_fallback(plt: Any) -> bool:
    """Add NanumGothic (shipped by the ``koreanize-matplotlib`` wheel, a dependency of the ``plot``
    extra) behind the default sans-serif font, so Korean site names keep their glyphs in charts.
    The package is located, not imported: importing it would change every rc setting."""
    import importlib.util
    from pathlib import Path

    from matplotlib import font_manager

    spec = importlib.util.find_spec("koreanize_matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return False
    font = Path(next(iter(spec.submodule_search_locations))) / "fonts" / "NanumGothic.ttf"
    if not font.is_file():
        return False
    font_manager.fontManager.addfont(str(font))
    family = list(plt.rcParams["font.family"])
    if "NanumGothic" not in family:  # a family list: matplotlib falls back glyph by glyph along it
        plt.rcParams["font.family"] = [*family, "NanumGothic"]
    return True


# --------------------------------------------------------------------------------------------------
# composites (numpy only)
# --------------------------------------------------------------------------------------------------
def _stack(scene: Scene, bands: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    scene.require(list(bands), method="this composite")
    x = np.stack([scene.data[scene.bands.index(b)] for b in bands], axis=-1).astype(np.float32, copy=False)
    ok = scene.valid & np.isfinite(x).all(axis=-1)
    return x, ok


def stretch_limits(*scenes: Scene, bands: Sequence[str] = _TRUE, percentiles: tuple[float, float] = (2.0, 98.0),
                   per_band: bool = True) -> np.ndarray:
    """Percentile stretch limits over the valid pixels of one or more scenes.

    Parameters
    ----------
    *scenes : Scene
        Pass every date that will be shown, to show them on one scale.
    bands : sequence of str
        Common band names, in display order.
    percentiles : (float, float)
        Lower and upper percentiles (0-100) mapped to 0 and 1.
    per_band : bool
        One pair of limits per band (colour balance changes) or one pair shared by all bands.

    Returns
    -------
    limits : (len(bands), 2) float64 ndarray
        ``limits[i] = (lo, hi)`` in the scene's units; ``hi > lo`` always.

    Examples
    --------
    >>> from campwatch.io import read_scene
    >>> s = read_scene("data/sample_tiles/rennes/imgs_1", bands=["blue", "green", "red"])
    >>> lim = stretch_limits(s)
    >>> lim.shape, bool((lim[:, 1] > lim[:, 0]).all())
    ((3, 2), True)
    """
    if not scenes:
        raise ValueError("stretch_limits needs at least one scene")
    lo_p, hi_p = percentiles
    if not 0 <= lo_p < hi_p <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
    samples = []
    for s in scenes:
        x, ok = _stack(s, bands)
        samples.append(x[ok])
    pix = np.concatenate(samples, axis=0)
    if pix.shape[0] == 0:
        labels = ", ".join(s.label for s in scenes)
        warnings.warn(f"no valid pixel in {labels} to stretch bands {', '.join(bands)}; the composite is black",
                      LowValidDataWarning, stacklevel=2)
        return np.tile([0.0, 1.0], (len(bands), 1))
    if per_band:
        lim = np.percentile(pix, [lo_p, hi_p], axis=0).T.astype(np.float64)
    else:
        lim = np.tile(np.percentile(pix, [lo_p, hi_p]), (len(bands), 1)).astype(np.float64)
    degenerate = lim[:, 1] <= lim[:, 0]
    lim[degenerate, 1] = lim[degenerate, 0] + max(1e-6, 1e-6 * float(np.abs(lim[degenerate, 0]).max(initial=0.0)))
    return lim


def composite(scene: Scene, bands: Sequence[str], *, percentiles: tuple[float, float] = (2.0, 98.0),
              per_band: bool = True, limits: np.ndarray | None = None) -> np.ndarray:
    """(M, N, 3) float32 image in [0, 1] from three bands, percentile-stretched.

    Parameters
    ----------
    scene : Scene
    bands : sequence of three str
        Common band names shown as red, green and blue.
    percentiles, per_band :
        See :func:`stretch_limits` (ignored when ``limits`` is given).
    limits : (3, 2) ndarray, optional
        Stretch limits from :func:`stretch_limits`, e.g. shared by two dates.

    Returns
    -------
    rgb : (M, N, 3) float32 ndarray
        Values in [0, 1]; invalid pixels are 0.  The input scene is not modified.

    Examples
    --------
    >>> from campwatch.io import read_scene
    >>> s = read_scene("data/sample_tiles/rennes/imgs_1", bands=["green", "red", "nir"])
    >>> rgb = composite(s, ("nir", "red", "green"))
    >>> rgb.shape, float(rgb.min()) >= 0.0, float(rgb.max()) <= 1.0
    ((339, 563, 3), True, True)
    """
    if len(bands) != 3:
        raise ValueError(f"a composite needs three bands (red, green, blue display), got {list(bands)}")
    x, ok = _stack(scene, bands)
    lim = stretch_limits(scene, bands=bands, percentiles=percentiles, per_band=per_band) if limits is None \
        else np.asarray(limits, dtype=np.float64)
    if lim.shape != (3, 2):
        raise ValueError(f"limits must have shape (3, 2), got {lim.shape}")
    span = np.maximum(lim[:, 1] - lim[:, 0], 1e-12)
    with np.errstate(invalid="ignore"):
        y = (x - lim[:, 0].astype(np.float32)) / span.astype(np.float32)
    y = np.clip(np.nan_to_num(y, nan=0.0), 0.0, 1.0).astype(np.float32)
    y[~ok] = 0.0
    return y


def true_colour(scene: Scene, *, percentiles: tuple[float, float] = (2.0, 98.0), per_band: bool = True,
                limits: np.ndarray | None = None) -> np.ndarray:
    """(M, N, 3) float32 red-green-blue composite in [0, 1]; see :func:`composite`.

    Examples
    --------
    >>> from campwatch.io import read_scene
    >>> s = read_scene("data/sample_tiles/bercy/imgs_1", bands=["blue", "green", "red"])
    >>> true_colour(s).shape
    (395, 360, 3)
    """
    return composite(scene, _TRUE, percentiles=percentiles, per_band=per_band, limits=limits)


def false_colour(scene: Scene, *, bands: Sequence[str] = _FALSE, percentiles: tuple[float, float] = (2.0, 98.0),
                 per_band: bool = True, limits: np.ndarray | None = None) -> np.ndarray:
    """(M, N, 3) float32 false-colour composite in [0, 1]; see :func:`composite`.

    The default NIR-red-green shows vegetation red and bare ground or roofs grey-cyan;
    ``bands=("swir16", "nir", "red")`` separates built-up from bare soil better.

    Examples
    --------
    >>> from campwatch.io import read_scene
    >>> s = read_scene("data/sample_tiles/bercy/imgs_1", bands=["green", "red", "nir"])
    >>> false_colour(s).shape
    (395, 360, 3)
    """
    return composite(scene, bands, percentiles=percentiles, per_band=per_band, limits=limits)


def overlay_mask(rgb: np.ndarray, mask: np.ndarray, *, colour: Sequence[float] = (1.0, 0.0, 0.0),
                 nodata: np.ndarray | None = None, dim: float = 0.6) -> np.ndarray:
    """``rgb`` dimmed by ``dim``, with ``mask`` pixels in ``colour`` and ``nodata`` pixels grey.

    Parameters
    ----------
    rgb : (M, N, 3) float ndarray in [0, 1]
    mask : (M, N) bool ndarray
    nodata : (M, N) bool ndarray, optional

    Returns
    -------
    (M, N, 3) float32 ndarray; ``rgb`` is not modified.

    Examples
    --------
    >>> out = overlay_mask(np.ones((2, 2, 3)), np.array([[True, False], [False, False]]))
    >>> (out[0, 0] * 10).round().astype(int).tolist(), (out[1, 1] * 10).round().astype(int).tolist()
    ([10, 0, 0], [6, 6, 6])
    """
    if mask.shape != rgb.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match the image {rgb.shape[:2]}")
    out = np.asarray(rgb, dtype=np.float32) * np.float32(dim)
    if nodata is not None:
        out[nodata] = _NODATA_RGB
    out[mask.astype(bool)] = np.asarray(colour, dtype=np.float32)
    return out


def confusion_rgb(pred: np.ndarray, truth: np.ndarray, *, valid: np.ndarray | None = None) -> np.ndarray:
    """(M, N, 3) float32 map of a prediction against reference labels.

    True positive white, false positive (predicted change, none in the labels) red, false
    negative (missed change) cyan, true negative dark grey, no reference label mid grey.

    Examples
    --------
    >>> rgb = confusion_rgb(np.array([[1, 1, 0, 0]], bool), np.array([[1, 0, 1, 0]], bool))
    >>> (rgb[0] * 100).round().astype(int).tolist()
    [[100, 100, 100], [90, 10, 10], [0, 80, 80], [15, 15, 15]]
    """
    p, t = pred.astype(bool), truth.astype(bool)
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {p.shape} differs from label shape {t.shape}")
    out = np.empty((*p.shape, 3), np.float32)
    out[...] = (0.15, 0.15, 0.15)
    out[p & t] = (1.0, 1.0, 1.0)
    out[p & ~t] = (0.9, 0.1, 0.1)
    out[~p & t] = (0.0, 0.8, 0.8)
    if valid is not None:
        out[~valid.astype(bool)] = _NODATA_RGB
    return out


# --------------------------------------------------------------------------------------------------
# figures (matplotlib, imported on call)
# --------------------------------------------------------------------------------------------------
def _extent(grid: Grid) -> tuple[float, float, float, float]:
    left, bottom, right, top = grid.bounds
    return (left, right, bottom, top)


def _axes(ax: Any, figsize: tuple[float, float] = (6.0, 5.0)) -> Any:
    if ax is not None:
        return ax
    plt = pyplot()
    _, ax = plt.subplots(figsize=figsize)
    return ax


def _geo_aspect(ax: Any, grid: Grid) -> None:
    """Square ground pixels: for lon/lat axes, the aspect is 1/cos(latitude)."""
    if grid.is_geographic:
        lat = (grid.bounds[1] + grid.bounds[3]) / 2
        ax.set_aspect(1.0 / max(math.cos(math.radians(lat)), 1e-3))
        ax.set_xlabel("longitude (°)")
        ax.set_ylabel("latitude (°)")
    else:
        ax.set_aspect("equal")
        ax.set_xlabel(f"x ({grid.crs.to_string()})")
        ax.set_ylabel("y")
    ax.tick_params(labelsize=7)


def _imshow(ax: Any, rgb: np.ndarray, grid: Grid, *, nodata: np.ndarray | None = None) -> Any:
    img = rgb
    if nodata is not None and nodata.any():
        img = np.array(rgb, dtype=np.float32, copy=True)
        img[nodata] = _NODATA_RGB
    im = ax.imshow(img, extent=_extent(grid), interpolation="nearest", origin="upper")
    _geo_aspect(ax, grid)
    return im


def show_scene(scene: Scene, *, bands: Sequence[str] = _TRUE, ax: Axes | None = None,
               percentiles: tuple[float, float] = (2.0, 98.0), per_band: bool = True,
               limits: np.ndarray | None = None, aoi: Any = None, title: str | None = None,
               mask: np.ndarray | None = None, mask_colour: Sequence[float] = (1.0, 0.9, 0.0)) -> Axes:
    """Draw a composite of ``scene`` in its CRS coordinates; invalid pixels are grey.

    Parameters
    ----------
    scene : Scene
    bands : three str
        ``("red", "green", "blue")`` (true colour) or e.g. ``("nir", "red", "green")``.
    ax : matplotlib Axes, optional
    percentiles, per_band, limits :
        See :func:`composite`.
    aoi : AOI or shapely geometry in EPSG:4326, optional
        Outlined in yellow (:func:`plot_aoi`).
    title : str, optional
        Default: the scene's date (or file) and bands.
    mask : (M, N) bool ndarray, optional
        Pixels painted in ``mask_colour`` over the composite (a cloud or change mask).

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> from campwatch.io import read_scene
    >>> s = read_scene("data/sample_tiles/rennes/imgs_1", bands=["blue", "green", "red"])
    >>> ax = show_scene(s)
    >>> ax.get_images()[0].get_array().shape
    (339, 563, 3)
    >>> import matplotlib.pyplot as plt; plt.close("all")
    """
    rgb = composite(scene, bands, percentiles=percentiles, per_band=per_band, limits=limits)
    ax = _axes(ax)
    _, ok = _stack(scene, bands)
    if mask is not None:
        rgb = overlay_mask(rgb, mask, colour=mask_colour, dim=1.0)
    _imshow(ax, rgb, scene.grid, nodata=~ok & (mask is None or ~mask))
    if aoi is not None:
        plot_aoi(aoi, grid=scene.grid, ax=ax)
    ax.set_title(title if title is not None else f"{scene.label} ({'-'.join(bands)})", fontsize=9)
    return ax


def _to_grid_crs(geometry: Any, grid: Grid) -> Any:
    """An EPSG:4326 shapely geometry (or an AOI) in ``grid``'s CRS."""
    if hasattr(geometry, "to_crs") and hasattr(geometry, "geometry_quality"):  # campwatch AOI
        return geometry.to_crs(grid.crs)
    geom = getattr(geometry, "geometry", geometry)
    if grid.crs.to_epsg() == 4326:
        return geom
    import shapely
    from pyproj import Transformer

    tr = Transformer.from_crs("EPSG:4326", grid.crs.to_wkt(), always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def _rings(geom: Any) -> Iterable[np.ndarray]:
    if geom is None or geom.is_empty:
        return
    kind = geom.geom_type
    if kind == "Polygon":
        yield np.asarray(geom.exterior.coords)
        for ring in geom.interiors:
            yield np.asarray(ring.coords)
    elif kind in ("MultiPolygon", "GeometryCollection"):
        for part in geom.geoms:
            yield from _rings(part)
    elif kind in ("LineString", "LinearRing"):
        yield np.asarray(geom.coords)


def plot_aoi(aoi: Any, *, grid: Grid, ax: Axes | None = None, colour: str = "yellow",
             linewidth: float = 1.5) -> Axes:
    """Outline an AOI (or a shapely geometry in EPSG:4326) on axes in ``grid``'s CRS."""
    pyplot()
    from matplotlib.collections import LineCollection

    ax = _axes(ax)
    geom = _to_grid_crs(aoi, grid)
    label = f"AOI {getattr(aoi, 'id', '')}".strip()
    if hasattr(aoi, "geometry_quality"):
        label += f" (geometry {aoi.geometry_quality})"
    ax.add_collection(LineCollection(list(_rings(geom)), colors=colour, linewidths=linewidth, label=label))
    return ax


def plot_polygons(polygons: gpd.GeoDataFrame, *, ax: Axes | None = None, grid: Grid | None = None,
                  column: str | None = None, colours: Mapping[str, str] | None = None, colour: str = "red",
                  linewidth: float = 1.0, legend: bool = True, label: str | None = None) -> Axes:
    """Outline polygons (change regions, growth groups) over axes drawn by :func:`show_scene`.

    Parameters
    ----------
    polygons : GeoDataFrame
        With a CRS; reprojected to ``grid.crs`` when ``grid`` is given and they differ.
    ax : matplotlib Axes, optional
    grid : Grid, optional
        The grid the axes show (the scene's).
    column : str, optional
        Colour by this categorical column (``"class"`` for growth polygons, coloured by
        :data:`GROWTH_COLOURS` unless ``colours`` is given); the legend gives each value's count.
    colour : str
        Outline colour when ``column`` is None.
    label : str, optional
        Legend text when ``column`` is None (default: ``"<n> polygons"``).

    Returns
    -------
    matplotlib Axes
    """
    pyplot()
    from matplotlib.collections import LineCollection

    ax = _axes(ax)
    gdf = polygons
    if grid is not None and gdf.crs is not None and len(gdf) and not gdf.crs.equals(grid.crs.to_wkt()):
        gdf = gdf.to_crs(grid.crs.to_wkt())
    if column is None:
        lines = [r for g in gdf.geometry for r in _rings(g)]
        ax.add_collection(LineCollection(lines, colors=colour, linewidths=linewidth,
                                         label=label if label is not None else f"{len(gdf)} polygons"))
    else:
        palette = dict(GROWTH_COLOURS if colours is None and column == "class" else (colours or {}))
        default_cycle = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf"]
        values = list(dict.fromkeys(palette)) + [v for v in dict.fromkeys(gdf[column]) if v not in palette]
        for i, value in enumerate(values):
            sel = gdf[gdf[column] == value]
            if not len(sel):
                continue
            c = palette.get(value, default_cycle[i % len(default_cycle)])
            lines = [r for g in sel.geometry for r in _rings(g)]
            ax.add_collection(LineCollection(lines, colors=c, linewidths=linewidth, label=f"{value} ({len(sel)})"))
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper right", framealpha=0.8)
    return ax


def show_change(before: Scene, after: Scene, result: ChangeResult, *, bands: Sequence[str] = _TRUE,
                percentiles: tuple[float, float] = (2.0, 98.0), axes: Sequence[Axes] | None = None,
                aoi: Any = None) -> Figure:
    """Before, after, and after with the change mask in red, side by side.

    Both dates are stretched with one set of limits (:func:`stretch_limits` over both), so a
    brightness change between the dates stays visible.  No data (255 in ``result.mask``) is grey.

    Parameters
    ----------
    before, after : Scene
        The scenes compared, on ``result.grid``.
    result : ChangeResult
    axes : three matplotlib Axes, optional
    aoi : AOI or shapely geometry in EPSG:4326, optional
        Outlined on each panel.

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> from campwatch.io import read_scene
    >>> from campwatch.compare import compare_scenes
    >>> b = read_scene("data/sample_tiles/rennes/imgs_1")
    >>> a = read_scene("data/sample_tiles/rennes/imgs_2", grid=b.grid)
    >>> fig = show_change(b, a, compare_scenes(b, a))
    >>> len(fig.axes)
    3
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    for name, s in (("before", before), ("after", after)):
        if not s.grid.same_as(result.grid):
            raise GridMismatchError(f"{name} ({s.label}) is not on the change result's grid: {s.grid!r} vs "
                                    f"{result.grid!r}; pass the scenes that were compared")
    lim = stretch_limits(before, after, bands=bands, percentiles=percentiles)
    if axes is None:
        plt = pyplot()
        fig, axs = plt.subplots(1, 3, figsize=(13, 4.6), sharex=True, sharey=True, layout="constrained")
        axes = list(axs)
    if len(axes) != 3:
        raise ValueError(f"show_change draws three panels; got {len(axes)} axes")
    show_scene(before, bands=bands, ax=axes[0], limits=lim, aoi=aoi, title=f"before {before.label}")
    show_scene(after, bands=bands, ax=axes[1], limits=lim, aoi=aoi, title=f"after {after.label}")
    rgb = composite(after, bands, limits=lim)
    ov = overlay_mask(rgb, result.mask == 1, nodata=result.mask == NODATA)
    _imshow(axes[2], ov, result.grid)
    if aoi is not None:
        plot_aoi(aoi, grid=result.grid, ax=axes[2])
    axes[2].set_title(f"change ({result.method}): {result.changed_area_m2:,.0f} m², "
                      f"{result.changed_fraction:.2%} of valid", fontsize=9)
    fig = axes[0].figure
    thr = result.threshold
    fig.suptitle(f"threshold {thr.value:.3g} ({thr.method}); valid {result.valid_fraction:.1%}; "
                 f"pixel {result.grid.pixel_size_m():.1f} m; red = change, grey = no data", fontsize=9)
    return fig  # type: ignore[return-value]


def plot_histogram(result: ChangeResult, *, ax: Axes | None = None, log: bool = True,
                   xmax: float | None = None) -> Axes:
    """The histogram of the valid change scores, with the threshold as a vertical line.

    The histogram is the one the threshold was chosen from (``result.histogram``, every valid
    pixel of every window).  Pixels above the threshold are shaded; the legend gives their share
    before the clean-up (opening, minimum mapping unit), which is why it can differ from the
    changed fraction of the mask.

    Parameters
    ----------
    result : ChangeResult
    ax : matplotlib Axes, optional
    log : bool
        Logarithmic count axis (change is usually a thin tail).
    xmax : float, optional
        Right edge of the x axis (default: 1.25 × the 99.9th percentile, at least twice the
        threshold); pixels beyond it are counted in the legend.  Counting bins are merged into
        about 120 display bins.

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> from campwatch.compare import compare_files
    >>> r = compare_files("data/sample_tiles/rennes/imgs_1", "data/sample_tiles/rennes/imgs_2")
    >>> ax = plot_histogram(r)
    >>> round(float(ax.lines[0].get_xdata()[0]), 3) == round(r.threshold.value, 3)
    True
    >>> import matplotlib.pyplot as plt; plt.close("all")
    """
    ax = _axes(ax, figsize=(6.0, 3.5))
    h = result.histogram
    edges, counts = np.asarray(h.edges), np.asarray(h.counts)
    thr = float(result.threshold.value)
    total = int(counts.sum())
    if xmax is None:
        q = h.quantile(0.999) if total else float(edges[-1])
        xmax = max(1.25 * q, 2.0 * thr) if math.isfinite(thr) else 1.25 * q
        xmax = min(xmax, float(edges[-1]))
    # display bins: merge adjacent counting bins so about 120 cover [edges[0], xmax]
    shown = int(np.searchsorted(edges, xmax, side="right"))
    k = max(1, (shown - 1) // 120)
    n = (len(counts) // k) * k
    disp_counts = counts[:n].reshape(-1, k).sum(axis=1)
    disp_edges = edges[:n + 1:k]
    if n < len(counts):
        disp_counts[-1] += counts[n:].sum()
        disp_edges = np.append(disp_edges[:-1], edges[-1])
    if math.isfinite(thr):
        above = int(counts[edges[:-1] >= thr].sum())
        share = above / total if total else 0.0
        ax.axvline(thr, color="crimson", lw=1.5,
                   label=f"threshold {thr:.3g} ({result.threshold.method}); {share:.2%} of valid pixels above")
        ax.axvspan(thr, xmax, color="crimson", alpha=0.08)
    ax.stairs(disp_counts, disp_edges, fill=True, color="#4c72b0", alpha=0.8,
              label=f"{total:,} valid pixels ({result.method})")
    beyond = int(counts[edges[1:] > xmax].sum())
    if beyond:
        ax.plot([], [], " ", label=f"{beyond:,} pixels above {xmax:.3g} not shown")
    if log:
        ax.set_yscale("log")
    ax.set_xlim(float(edges[0]), xmax)
    ax.set_xlabel("change score" + (" (σ units)" if result.threshold.method in ("chi2",) else ""))
    ax.set_ylabel("pixels")
    ax.set_title(result.threshold.note or f"threshold chosen by {result.threshold.method}", fontsize=8)
    ax.legend(fontsize=7)
    return ax


def show_confusion(result: ChangeResult, labels: np.ndarray, *, ax: Axes | None = None, change: int = 2,
                   no_change: int = 1) -> Axes:
    """Map a change mask against reference labels (OSCD: 1 no change, 2 change).

    White: change found and labelled; red: found but not labelled (false alarm); cyan: labelled
    but missed; grey: no label.  As in ``campwatch evaluate``, mask no data counts as no change.
    The title gives precision, recall and F1 (:func:`campwatch.bench.metrics.confusion`).

    Parameters
    ----------
    result : ChangeResult
    labels : (M, N) int ndarray
        On ``result.grid`` (``io.read_raster(path, grid=result.grid)``).

    Returns
    -------
    matplotlib Axes
    """
    pyplot()
    from matplotlib.patches import Patch

    truth, ok = labels_to_bool(np.asarray(labels), change=change, no_change=no_change)
    pred = result.mask == 1
    c = confusion(pred, truth, valid=ok)
    ax = _axes(ax)
    _imshow(ax, confusion_rgb(pred, truth, valid=ok), result.grid)
    handles = [Patch(color=(1, 1, 1), label=f"true positive {c.tp:,}"), Patch(color=(0.9, 0.1, 0.1), label=f"false alarm {c.fp:,}"),
               Patch(color=(0.0, 0.8, 0.8), label=f"missed {c.fn:,}")]
    ax.legend(handles=handles, fontsize=7, loc="lower right", framealpha=0.8, facecolor="#dddddd")
    ax.set_title(f"{result.method}: precision {c.precision:.2f}, recall {c.recall:.2f}, F1 {c.f1:.2f}", fontsize=9)
    return ax


def plot_timeline(timeline: Any, *, ax: Axes | None = None) -> Axes:
    """Built footprint per usable date with its outline uncertainty; skipped dates as grey crosses.

    Each consecutive pair is annotated with its net change and significance (``n.s.``: the
    net change is within the uncertainty and must not be reported as growth).

    Parameters
    ----------
    timeline : campwatch.track.Timeline (typed Any: plot sits below the tool layer)
        From :func:`campwatch.track.track`.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax, figsize=(7.0, 4.0))
    used = timeline.used
    if used:
        x = [d.date for d in used]
        y = [d.footprint["footprint_m2"] for d in used]
        err = [d.footprint["footprint_uncertainty_m2"] for d in used]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=4, linestyle="none",  # type: ignore[arg-type]
                    label="built footprint ± outline uncertainty")  # points: no line, which would imply a trend
    skipped = [d for d in timeline.dates if d.status != "used"]
    if skipped:
        ax.scatter([d.date for d in skipped], [0] * len(skipped),  # type: ignore[arg-type]
                   marker="x", color="grey", zorder=3,
                   label=f"skipped ({len(skipped)}): see the reasons in timeline.rows()")
    for p in timeline.pairs:
        s = p.summary()
        sig = "" if s["significance"] == "significant" else f" ({s['significance']})"
        ax.annotate(f"{s['net_m2']:+,.0f} ± {s['net_uncertainty_m2']:,.0f} m²{sig}",
                    xy=(dt.date.fromisoformat(s["date_after"]), s["footprint_after_m2"]),
                    textcoords="offset points", xytext=(0, 10), ha="center", fontsize=7)
    ax.set_title(f"{timeline.aoi_id or 'scene overlap'}: built footprint (pixel {timeline.grid.pixel_size_m():.1f} m, "
                 f"AOI geometry {timeline.geometry_quality})", fontsize=9)
    ax.set_ylabel("m²")
    top = max([d.footprint["footprint_m2"] + d.footprint["footprint_uncertainty_m2"] for d in used], default=0.0)
    ax.set_ylim(bottom=0, top=1.2 * top if top > 0 else 100.0)  # all zero: a readable 0-100 m² axis
    if timeline.dates:
        d0, d1 = min(d.date for d in timeline.dates), max(d.date for d in timeline.dates)
        pad = dt.timedelta(days=max(30, (d1 - d0).days // 8))
        ax.set_xlim(d0 - pad, d1 + pad)  # type: ignore[arg-type]
    ax.legend(fontsize=7, loc="lower left")
    ax.figure.autofmt_xdate()
    return ax


# --------------------------------------------------------------------------------------------------
# HTML tables (no matplotlib)
# --------------------------------------------------------------------------------------------------

def growth_html(growth: GrowthResult) -> str:
    """The HTML table for ``GrowthResult._repr_html_``: footprints, net ± uncertainty, significance, limits.

    Examples
    --------
    >>> from campwatch.io import read_scene
    >>> from campwatch.structures import footprint_growth
    >>> bands = ["blue", "green", "red", "nir", "swir16"]
    >>> b = read_scene("data/sample_tiles/rennes/imgs_1", bands=bands)
    >>> a = read_scene("data/sample_tiles/rennes/imgs_2", grid=b.grid, bands=bands)
    >>> "significance" in growth_html(footprint_growth(b, a))
    True
    """
    return growth._repr_html_()


_TIMELINE_COLUMNS = ("date", "status", "reason", "cloud_fraction", "valid_fraction", "footprint_m2",
                     "footprint_uncertainty_m2", "n_objects", "growth_since", "net_m2", "net_uncertainty_m2",
                     "significance")


def timeline_html(timeline: Any) -> str:
    """The HTML for ``Timeline._repr_html_``: one row per date (used or skipped, with the reason), then the caveats.

    Examples
    --------
    >>> from campwatch.track import track
    >>> t = track(["data/sample_tiles/rennes/imgs_1", "data/sample_tiles/rennes/imgs_2"])
    >>> out = timeline_html(t)
    >>> out.count("<tr>") >= 3, "2017-06-21" in out
    (True, True)
    """
    d = timeline.to_dict()
    caption = (f"campwatch Timeline: {timeline.aoi_id or 'scene overlap'} — {len(timeline.used)} of "
               f"{len(timeline.dates)} dates used, pixel {timeline.grid.pixel_size_m():.2f} m, "
               f"AOI geometry {timeline.geometry_quality}")
    table = html_records(timeline.rows(), columns=_TIMELINE_COLUMNS, caption=caption)
    notes = [("significance rule", d.get("significance_rule")), ("limits", d.get("limits"))]
    return table + html_table([(k, v) for k, v in notes if v])


#: Longest edge, in pixels, of each panel of ``quicklook.png`` (a 1024² pair is shown every 2nd pixel).
QUICKLOOK_PANEL_PX = 512


def quicklook_png(panels: Sequence[np.ndarray], *, titles: Sequence[str],
                  legend: Sequence[tuple[tuple[int, int, int], str]], note: str = "", pixel_step: int = 1) -> bytes:
    """``quicklook.png``: panels side by side, each titled, with a legend and a note, as PNG bytes.

    Parameters
    ----------
    panels : sequence of (M, N, 3) uint8 ndarray
        Same shape (before, after, change overlay).  Each is shown every ``k``-th pixel so that its
        longest edge is at most :data:`QUICKLOOK_PANEL_PX` (display only; the figures are measured
        on every pixel), and the figure says so.
    titles : sequence of str
        One per panel (a newline splits a long title).
    legend : sequence of ((r, g, b), label)
        The colours the panels draw.
    note : str
        A line under the legend.
    pixel_step : int
        The panels are already every ``pixel_step``-th pixel (the streaming engine's thumbnails);
        the note then counts both steps.

    Without matplotlib the panels are written side by side with no text (:func:`campwatch.io.png_bytes`).

    Examples
    --------
    >>> png = quicklook_png([np.zeros((20, 30, 3), np.uint8)] * 3, titles=["a", "b", "c"], legend=[((255, 0, 0), "change")])
    >>> png[:4]
    b'\x89PNG'
    """
    h, w = panels[0].shape[:2]
    k = max(1, math.ceil(max(h, w) / QUICKLOOK_PANEL_PX))
    shown = [np.ascontiguousarray(p[::k, ::k]) for p in panels]
    try:
        import matplotlib

        matplotlib.use("Agg")
        pyplot()  # the Hangul fallback font
    except (ImportError, MissingDependencyError):
        return png_bytes(np.concatenate(shown, axis=1))
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    step = k * pixel_step
    scale = ("every pixel shown" if step == 1 else f"1 pixel in {step} shown each way") + \
        " in a 256-colour palette (display only; every figure is measured on every pixel)"
    text = "; ".join(t for t in (note, scale) if t)
    ph, pw = shown[0].shape[:2]
    dpi, gap, top, bottom = 100, 12, 44, 58
    fw = max(len(shown) * (pw + gap) + gap, 480)
    fh = ph + top + bottom
    fig = Figure(figsize=(fw / dpi, fh / dpi), dpi=dpi)  # no pyplot state: the streaming engine draws it on a thread
    x0 = (fw - len(shown) * (pw + gap) + gap) / 2
    for i, (img, title) in enumerate(zip(shown, titles, strict=True)):
        ax = fig.add_axes(((x0 + i * (pw + gap)) / fw, bottom / fh, pw / fw, ph / fh))
        ax.imshow(img, interpolation="nearest", aspect="auto")
        ax.set_axis_off()
        ax.set_title(title, fontsize=9, pad=3)
    handles = [Patch(facecolor="#{:02x}{:02x}{:02x}".format(*rgb), edgecolor="#555", label=label) for rgb, label in legend]
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 16 / fh), ncol=len(handles), fontsize=8,
               frameon=False, handlelength=1.2)
    fig.text(0.5, 4 / fh, text, ha="center", va="bottom", fontsize=7, color="#444")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    # a 256-colour palette (Pillow's fast octree, no dithering) keeps a 1024² pair's quicklook near
    # 0.6 MB instead of 2 MB; a colour covering many pixels (the change red) keeps its own entry,
    # a small legend swatch may move by a few levels
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(rgba[..., :3]).quantize(256, method=Image.Quantize.FASTOCTREE,
                                            dither=Image.Dither.NONE).save(out, format="PNG")
    return out.getvalue()
