from __future__ import annotations

import numpy as np
import pytest

from campwatch.threshold import Histogram, chi2_threshold, kittler_illingworth, otsu, select_threshold


def test_histogram_adds_across_windows_like_whole():
    rng = np.random.default_rng(3)
    x = rng.gamma(2, 1, 10000)
    whole = Histogram.linear(0, 30, bins=300)
    whole.add(x)
    parts = Histogram.linear(0, 30, bins=300)
    for chunk in np.array_split(x, 7):
        h = Histogram.linear(0, 30, bins=300)
        h.add(chunk)
        parts += h
    assert np.array_equal(whole.counts, parts.counts)
    assert otsu(whole) == otsu(parts)


def test_bimodal_thresholds_fall_between_modes():
    rng = np.random.default_rng(0)
    h = Histogram.linear(-5, 20, bins=500)
    h.add(np.r_[rng.normal(0, 1, 20000), rng.normal(10, 1.5, 2000)])
    for t in (otsu(h), kittler_illingworth(h)):
        assert 2 < t < 8


def test_noise_only_is_not_forced_to_change():
    rng = np.random.default_rng(1)
    noise = np.sqrt(rng.chisquare(4, 200000))
    h = Histogram.linear(0, 64, bins=2048)
    h.add(noise)
    for method in ("otsu", "ki"):
        c = select_threshold(h, method, floor=chi2_threshold(dof=4, alpha=1e-6))
        assert (noise > c.value).mean() < 1e-4
    c = select_threshold(h, "chi2", dof=4, alpha=1e-6)
    assert (noise > c.value).sum() <= 3


def test_fixed_needs_value():
    with pytest.raises(ValueError):
        select_threshold(Histogram.linear(0, 1), "fixed")
