"""campwatch.plot on the real sample tiles: composites, figures, HTML tables, the optional dependency."""

from __future__ import annotations

import subprocess
import sys
import warnings

import matplotlib  # the dev extra installs it; a missing one must fail, not skip
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.collections import LineCollection

import campwatch as cw
from campwatch import plot
from campwatch.bench.metrics import labels_to_bool
from campwatch.compare import read_pair
from campwatch.detect import NODATA
from campwatch.errors import LowValidDataWarning, MissingBandsError, MissingDependencyError

RENNES = ("data/sample_tiles/rennes/imgs_1", "data/sample_tiles/rennes/imgs_2")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def rennes():
    """Rennes inside the sample AOI: before, after (cloud-masked), the AOI and the change result."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    before, after, aoi = read_pair(*(str(root / p) for p in RENNES), aoi="sample-rennes")
    result = cw.compare_scenes(before, after, aoi=aoi)
    return before, after, aoi, result


@pytest.fixture(scope="module")
def tile():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    return cw.read_scene(root / RENNES[0], bands=["blue", "green", "red", "nir"])


# -- composites ------------------------------------------------------------------------------------
def test_true_colour_range_shape_and_nodata(tile):
    before = tile.data.copy()
    rgb = plot.true_colour(tile)
    assert rgb.shape == (*tile.grid.shape, 3) and rgb.dtype == np.float32
    assert float(rgb.min()) == 0.0 and float(rgb.max()) == 1.0
    assert np.array_equal(tile.data, before, equal_nan=True)  # input untouched
    hole = np.ones(tile.grid.shape, bool)
    hole[100:120, 200:260] = False
    holed = tile.with_valid(hole)
    out = plot.true_colour(holed)
    assert (out[~hole] == 0).all() and out[hole].max() == 1.0


@pytest.mark.parametrize("percentiles", [(2.0, 98.0), (5.0, 95.0)])
def test_percentile_stretch_clips_the_tails(tile, percentiles):
    rgb = plot.true_colour(tile, percentiles=percentiles)
    ok = tile.valid
    tail = (100 - percentiles[1]) / 100
    for ch in range(3):
        at_top = float((rgb[..., ch][ok] >= 1.0).mean())
        at_bottom = float((rgb[..., ch][ok] <= 0.0).mean())
        assert 0.5 * tail < at_top < 1.5 * tail, (ch, at_top)
        assert 0.5 * tail < at_bottom < 1.5 * tail, (ch, at_bottom)


def test_stretch_limits_match_numpy_percentiles(tile):
    lim = plot.stretch_limits(tile, bands=("nir", "red", "green"), percentiles=(2, 98))
    nir = tile.band("nir")[tile.valid]
    assert lim.shape == (3, 2)
    assert lim[0] == pytest.approx(np.percentile(nir, [2, 98]))
    joint = plot.stretch_limits(tile, per_band=False)
    assert (joint == joint[0]).all()


def test_shared_limits_keep_a_brightness_difference(rennes):
    before, after, _, _ = rennes
    lim = plot.stretch_limits(before, after)
    own = plot.true_colour(after)
    shared = plot.true_colour(after, limits=lim)
    assert not np.allclose(own, shared)
    both = np.concatenate([plot.true_colour(before, limits=lim)[before.valid], shared[after.valid]])
    assert 0.005 < float((both >= 1).mean()) < 0.05  # 2 % over the two dates together, not per date


def test_false_colour_shows_vegetation_red(tile):
    fc = plot.false_colour(tile)
    ndvi = (tile.band("nir") - tile.band("red")) / (tile.band("nir") + tile.band("red"))
    veg, bare = (ndvi > 0.6) & tile.valid, (ndvi < 0.1) & tile.valid
    assert veg.sum() > 100 and bare.sum() > 100
    redness = fc[..., 0] - fc[..., 1]
    assert redness[veg].mean() > redness[bare].mean() + 0.2


def test_composite_errors(tile):
    with pytest.raises(MissingBandsError, match="swir16"):
        plot.false_colour(tile, bands=("swir16", "nir", "red"))
    with pytest.raises(ValueError, match="three bands"):
        plot.composite(tile, ("red", "green"))
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        plot.true_colour(tile, limits=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="percentiles"):
        plot.true_colour(tile, percentiles=(98, 2))


def test_no_valid_pixel_warns_and_is_black(tile):
    empty = tile.with_valid(np.zeros(tile.grid.shape, bool))
    with pytest.warns(LowValidDataWarning, match="no valid pixel"):
        rgb = plot.true_colour(empty)
    assert not rgb.any()


def test_overlay_and_confusion_colours():
    rgb = np.full((2, 3, 3), 0.5, np.float32)
    out = plot.overlay_mask(rgb, np.array([[1, 0, 0], [0, 0, 0]], bool),
                            nodata=np.array([[0, 1, 0], [0, 0, 0]], bool))
    assert out[0, 0].tolist() == [1, 0, 0] and out[0, 1] == pytest.approx(0.55)
    assert out[1, 2] == pytest.approx(0.3) and rgb[0, 0, 0] == 0.5
    c = plot.confusion_rgb(np.array([[1, 1, 0, 0]]), np.array([[1, 0, 1, 0]]), valid=np.array([[1, 1, 1, 0]]))
    assert c[0, 0].tolist() == [1, 1, 1] and c[0, 3] == pytest.approx(0.55)


# -- figures ---------------------------------------------------------------------------------------
def test_show_scene_is_georeferenced(tile):
    ax = plot.show_scene(tile, aoi=cw.resolve_aoi("sample-rennes"))
    img = ax.get_images()[0]
    left, bottom, right, top = tile.grid.bounds
    assert img.get_extent() == pytest.approx([left, right, bottom, top])
    assert img.get_array().shape == (*tile.grid.shape, 3)
    assert ax.get_aspect() == pytest.approx(1 / np.cos(np.radians((bottom + top) / 2)), rel=1e-6)
    (aoi_lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    xy = np.concatenate(aoi_lines.get_segments())
    assert left < xy[:, 0].min() < xy[:, 0].max() < right and bottom < xy[:, 1].min() < xy[:, 1].max() < top


def test_show_scene_paints_a_mask(tile):
    mask = np.zeros(tile.grid.shape, bool)
    mask[10:20, 10:30] = True
    arr = plot.show_scene(tile, mask=mask, mask_colour=(0, 0, 1)).get_images()[0].get_array()
    assert (arr[mask] == [0, 0, 1]).all()


def test_histogram_has_the_threshold_line_and_every_pixel(rennes):
    *_, result = rennes
    ax = plot.plot_histogram(result)
    (line,) = ax.lines[:1]
    assert line.get_xdata()[0] == pytest.approx(result.threshold.value)
    steps = [p for p in ax.patches if type(p).__name__ == "StepPatch"]
    values, edges, _ = steps[0].get_data()
    assert int(values.sum()) == result.histogram.total == int((result.mask != NODATA).sum())
    assert edges[0] == result.histogram.edges[0] and edges[-1] == result.histogram.edges[-1]
    above = int(result.histogram.counts[result.histogram.edges[:-1] >= result.threshold.value].sum())
    label = line.get_label()
    assert "chi2" in label and f"{above / result.histogram.total:.2%}" in label
    assert ax.get_yscale() == "log"


def test_show_change_panels(rennes):
    before, after, aoi, result = rennes
    fig = plot.show_change(before, after, result, aoi=aoi)
    assert len(fig.axes) == 3
    change = fig.axes[2].get_images()[0].get_array()
    red = np.all(change == [1, 0, 0], axis=-1)
    assert np.array_equal(red, result.mask == 1)
    assert np.allclose(change[result.mask == NODATA], 0.55)
    assert f"{result.changed_area_m2:,.0f} m²" in fig.axes[2].get_title()
    with pytest.raises(cw.GridMismatchError):
        plot.show_change(cw.read_scene(RENNES[0], bands=["blue", "green", "red"]), after, result)


def test_growth_polygons_by_class(rennes):
    before, after, aoi, _ = rennes
    growth = cw.footprint_growth(before, after, aoi=aoi)
    ax = plot.show_scene(after)
    plot.plot_polygons(growth.polygons, ax=ax, grid=after.grid, column="class")
    _, labels = ax.get_legend_handles_labels()
    counts = growth.polygons["class"].value_counts()
    assert sorted(labels) == sorted(f"{c} ({n})" for c, n in counts.items())
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert {tuple(np.round(c.get_colors()[0][:3], 3)) for c in lines} <= {
        tuple(np.round(matplotlib.colors.to_rgb(v), 3)) for v in plot.GROWTH_COLOURS.values()}


def test_polygons_reprojected_to_the_grid(rennes):
    _, after, _, result = rennes
    from campwatch.vectorize import mask_to_polygons

    gdf = mask_to_polygons(result.mask == 1, result.grid)
    ax = plot.plot_polygons(gdf.to_crs("EPSG:32630"), grid=after.grid)
    xy = np.concatenate(ax.collections[0].get_segments())
    left, bottom, right, top = after.grid.bounds
    assert left <= xy[:, 0].min() and xy[:, 0].max() <= right and bottom <= xy[:, 1].min() and xy[:, 1].max() <= top


def test_show_confusion_title_is_the_evaluate_score():
    labels, _ = cw.read_raster("data/sample_tiles/rennes/cm/rennes-cm.tif", grid=cw.read_scene(RENNES[0], bands=["red"]).grid)
    full = cw.compare_files(*RENNES)
    truth, ok = labels_to_bool(labels)
    c = cw.confusion(full.mask == 1, truth, valid=ok)
    ax = plot.show_confusion(full, labels)
    assert f"F1 {c.f1:.2f}" in ax.get_title()
    assert f"true positive {c.tp:,}" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_timeline_chart_and_html():
    t = cw.track(["data/sample_tiles/bercy/imgs_1", "data/sample_tiles/bercy/imgs_2"], aoi="sample-bercy")
    ax = plot.plot_timeline(t)
    y = [d.footprint["footprint_m2"] for d in t.used]
    assert ax.lines[0].get_ydata().tolist() == pytest.approx(y)
    assert len(ax.texts) == len(t.pairs) == 1 and "not-significant" in ax.texts[0].get_text()
    out = plot.timeline_html(t)
    assert out.count("<tr>") == 1 + len(t.dates) + 2  # header, one per date, then significance rule and limits
    assert f"{y[1]:,.1f}" in out and "geometry sample" in out


def test_timeline_chart_marks_skipped_dates():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LowValidDataWarning)
        t = cw.track(["data/sample_tiles/bercy/imgs_1", "data/sample_tiles/bercy/imgs_2"], aoi="sample-bercy",
                     max_cloud_fraction=0.1)
    ax = plot.plot_timeline(t)
    assert any("skipped (1)" in lab for lab in ax.get_legend_handles_labels()[1])
    assert "skipped" in plot.timeline_html(t) and "cloud fraction" in plot.timeline_html(t)


# -- HTML ------------------------------------------------------------------------------------------
def test_growth_html_reports_net_with_uncertainty(rennes):
    before, after, aoi, _ = rennes
    g = cw.footprint_growth(before, after, aoi=aoi)
    s = g.summary()
    out = plot.growth_html(g)
    assert f"{s['net_m2']:+,.0f} ± {s['net_uncertainty_m2']:,.0f} m²" in out
    assert s["significance"] in out and "of the AOI" in out
    assert f"{g.info['observed_fraction_of_aoi']:.1%}" in out


def test_html_tables_escape_and_format():
    out = plot.html_table([("a<b", 1234567), ("none", None), ("flag", True)], caption="x & y")
    assert "a&lt;b" in out and "1,234,567" in out and "—" in out and "yes" in out and "x &amp; y" in out
    rec = plot.html_records([{"a": 1.23456, "b": "<i>"}, {"a": None}], columns=["a", "b"])
    assert rec.count("<tr>") == 3 and "1.235" in rec and "&lt;i&gt;" in rec


# -- optional dependency ---------------------------------------------------------------------------
def test_missing_matplotlib_names_the_extra(monkeypatch, tile):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(MissingDependencyError, match=r"campwatch\[plot\]") as err:
        plot.show_scene(tile)
    assert isinstance(err.value, ImportError) and isinstance(err.value, cw.CampwatchError)
    assert plot.true_colour(tile).shape[-1] == 3  # composites need numpy only


def test_import_campwatch_does_not_import_matplotlib():
    code = "import sys, campwatch, campwatch.plot; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
