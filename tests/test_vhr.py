"""VHR mode on real LEVIR-CD and xBD pixels from ``../shared/data`` (never copied into the repo)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from rasterio import features

from campwatch.bench.vhr import pixel_scores, run_levir, run_xbd, xbd_building_scores, xbd_buildings, xbd_pairs
from campwatch.errors import AcquisitionDateWarning
from campwatch.io import read_raster, read_scene
from campwatch.vhr import GROWTH_CLASSES, building_mask, naive_cva, vhr_change

pytestmark = pytest.mark.shared

CROP = "test_2_0000_0000.tif"


def _pair(root: Path, name: str = CROP):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AcquisitionDateWarning)
        a = read_scene(root / "vhr-levircd" / "crop256" / "A" / name)
        b = read_scene(root / "vhr-levircd" / "crop256" / "B" / name, grid=a.grid)
    truth = read_raster(root / "vhr-levircd" / "crop256" / "label" / name, grid=a.grid)[0] > 0
    return a, b, truth


def _f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp, fp, fn = int((pred & truth).sum()), int((pred & ~truth).sum()), int((~pred & truth).sum())
    return pixel_scores(tp, fp, fn)["f1"]


def test_profile_is_vhr_on_levir(shared_data: Path) -> None:
    a, _, _ = _pair(shared_data)
    assert a.profile == "vhr-rgb"
    assert set(a.bands) == {"red", "green", "blue"}
    assert a.grid.pixel_size_m() < 1.0


def test_building_mask_finds_new_houses_and_leaves_input_alone(shared_data: Path) -> None:
    _, b, truth = _pair(shared_data)
    before = b.data.copy()
    m = building_mask(b)
    assert m.shape == b.grid.shape and m.dtype == bool
    assert np.array_equal(b.data, before, equal_nan=True)
    recall = (m & truth).sum() / truth.sum()
    assert recall > 0.5, f"building recall on labelled new houses {recall:.2f}"
    assert 0.05 < m.mean() < 0.6
    assert not m[~b.valid].any()


def test_vhr_change_beats_naive_on_levir_crop(shared_data: Path) -> None:
    a, b, truth = _pair(shared_data)
    res = vhr_change(a, b)
    f_vhr, f_naive = _f1(res.mask, truth), _f1(naive_cva(a, b), truth)
    assert f_vhr >= 0.5, f"VHR F1 {f_vhr:.3f}"
    assert f_vhr > f_naive + 0.2, f"VHR F1 {f_vhr:.3f} vs naive {f_naive:.3f}"
    assert res.counts["new"] >= 3
    g = res.growth
    assert set(g["growth_class"]) <= set(GROWTH_CLASSES)
    assert (g["area_m2"] >= 19.0).all()
    assert res.grid.same_as(a.grid)
    assert sum(res.counts.values()) == g.groupby("growth_class")["object_id"].nunique().sum()
    json.dumps(res.summary())
    assert "built" in res.sentence()


def test_same_scene_twice_is_no_change(shared_data: Path) -> None:
    a, _, _ = _pair(shared_data)
    res = vhr_change(a, a, coregister=False)
    assert not res.mask.any()
    assert res.counts["new"] == res.counts["demolished"] == 0
    assert res.counts["unchanged"] >= 1


def test_no_change_crop_stays_quiet(shared_data: Path) -> None:
    a, b, truth = _pair(shared_data, "train_386_0512_0768.tif")
    assert not truth.any()
    res = vhr_change(a, b)
    assert res.mask.mean() < 0.1, f"{res.mask.mean():.1%} flagged on a pair labelled unchanged"
    # the roofs that turned from white to grey correlate with their before-date selves
    assert res.counts["unchanged"] >= 1


def test_xbd_pair_runs_on_two_sensors(shared_data: Path) -> None:
    pair = next(p for p in xbd_pairs(shared_data / "vhr-xbd-joplin") if p.name.endswith("00000001"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AcquisitionDateWarning)
        a = read_scene(pair.before)
        b = read_scene(pair.after, grid=a.grid)
    res = vhr_change(a, b)
    ids, kinds = xbd_buildings(pair.labels, a.grid)
    lost = res.growth[res.growth["growth_class"].isin(["demolished", "shrunk"])]
    demo = features.rasterize(((g, 1) for g in lost.geometry), out_shape=a.grid.shape,
                              transform=a.grid.transform, fill=0, dtype="uint8") > 0
    s = xbd_building_scores(ids, kinds, demo)
    # roof-colour-free rubble test: well above the 0/69 of the grey-roof detector alone, and
    # undamaged houses (other sensor, 28 deg against 10 deg off-nadir) stay mostly unflagged
    assert s["destroyed_recall"] >= 0.3, s
    assert s["undamaged_false_alarm"] <= 0.1, s
    debris = lost[lost["reason"].str.startswith("roof-like before")]
    assert len(debris) > 10 and debris["low_confidence"].all()
    # every rubble segment was confirmed by the deep change, and the summary says how many were tested
    record = res.params["rubble_deep_confirmation"]
    assert 0 < record["confirmed"] <= record["segments"], record
    assert res.params["deep_change_threshold"] > 0
    # objects under the 20 m2 building size come only from the small-object test, flagged as such
    small = lost[lost["area_m2"] < 19.0]
    assert len(small) > 0 and small["reason"].str.startswith("small compact object before").all()
    assert small["low_confidence"].all() and (small["area_m2"] >= 7.0).all()
    # rubble segments of one house are counted once: the count stays near the labelled destroyed and
    # major-damage houses (98 against 96; 113 when each segment counted)
    wrecked = sum(k in ("destroyed", "major-damage") for k in kinds)
    assert res.counts["demolished"] <= 1.1 * wrecked, (res.counts, wrecked)
    # QuickBird-2 against WorldView-2: a shift model is fitted to the local windows and applied
    assert res.coregistration["applied"] and res.coregistration["residual_px"] < 1.0
    assert res.coregistration["model"] in ("translation", "affine")
    # radcal: IR-MAD's invariant pixels (P(no change) > 0.95 keeps about 5% of truly unchanged ones)
    assert res.normalisation["method"] == "irmad-radcal" and res.normalisation["stable_pixels"] > 1000
    assert res.buildings_before.max() > 10
    s = res.summary()
    assert s["counts"] == res.counts and isinstance(s["flags"], list)


@pytest.mark.slow
def test_xbd_destroyed_recall_target(shared_data: Path) -> None:
    # issue 10's 0.70 (120/171) was met only while tile 1 was "corrected" by (+2.29, -4.23) px, which
    # leaves 2.47 px at its roof corners (1.82 px uncorrected; benchmarks/vhr_coreg.py).  With the
    # local fit (issue 17) and radcal (issue 15) it is 112/171 = 0.655: the 0.70 target is issue 15's,
    # not met; this guards the measured figure (a drop of 6 buildings fails it)
    r = run_xbd(shared_data / "vhr-xbd-joplin")
    assert r["vhr"]["destroyed_recall"] >= 0.62, r["vhr"]
    assert r["vhr"]["undamaged_false_alarm"] <= 0.1, r["vhr"]
    # standing but damaged houses (many under blue tarps after) stay mostly unreported: 16/116
    # with the tarp rule, 35/116 without it
    assert r["vhr"]["minor_damage_flagged_rate"] <= 0.2, r["vhr"]


@pytest.mark.slow
def test_levir_pooled_f1_target(shared_data: Path) -> None:
    # issue 10: the demolition tiers tuned on xBD must not cost LEVIR (mostly new buildings) its target.
    # Measured 0.528 before the rubble segments were confirmed by the deep change, 0.558 after
    r = run_levir(shared_data / "vhr-levircd")
    assert r["pairs"] == 11
    assert r["vhr"]["f1"] >= 0.54, r["vhr"]
    assert r["vhr"]["f1"] > r["naive"]["f1"] + 0.25, (r["vhr"], r["naive"])


def test_bench_cli_on_one_pair(shared_data: Path, tmp_path: Path) -> None:
    from campwatch.cli.bench_vhr import command

    for sub in ("A", "B", "label"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / CROP).symlink_to(shared_data / "vhr-levircd" / "crop256" / sub / CROP)
    out = CliRunner().invoke(command, ["--only", "levir", "--levir", str(tmp_path), "--json"])
    assert out.exit_code == 0, out.output
    res = json.loads(out.output)["levir"]
    assert res["pairs"] == 1
    assert res["vhr"]["f1"] > res["naive"]["f1"]


def test_coarse_vhr_pixels_are_flagged(shared_data: Path) -> None:
    # DSIFN (~2 m): VHR mode's building detector finds few buildings at this size (recall 4% on the
    # set, docs/vhr.md), so the result says so instead of reading as a measurement
    root = shared_data / "vhr-dsifn"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AcquisitionDateWarning)
        a = read_scene(root / "A" / "0_2.tif")
        b = read_scene(root / "B" / "0_2.tif", grid=a.grid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = vhr_change(a, b)
    assert res.low_confidence and res.flags[0].startswith("pixels of 2.0 m")
    # ... and degrades to pixel change instead of going silent: building objects alone recalled 4% of
    # DSIFN's change; with the score, the raw difference and the deep-feature change, each over the
    # scene's own Otsu cut and averaged over segments of both dates, the mask recalls half of this
    # pair's, more precisely than the naive baseline does
    truth = read_raster(next((root / "label").glob("0_2*")), grid=a.grid)[0] > 0
    assert all(res.params[k] is not None for k in ("pixel_change_threshold", "raw_change_threshold",
                                                    "deep_change_threshold"))
    naive = naive_cva(a, b)
    assert (res.mask & truth).sum() / truth.sum() >= 0.5
    assert (res.mask & truth).sum() / res.mask.sum() > (naive & truth).sum() / naive.sum()
    # LEVIR-CD at 0.5 m carries no such flag
    c, d, _ = _pair(shared_data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fine = vhr_change(c, d)
    assert not any(f.startswith("pixels of") for f in fine.flags) and fine.params["pixel_change_threshold"] is None
    assert fine.params["pixel_change_segment_m2"] is None
    # there the network runs only to confirm rubble segments, when the rubble test found one
    found = fine.params["rubble_deep_confirmation"]["segments"] > 0
    assert (fine.params["deep_change_threshold"] is not None) == found
