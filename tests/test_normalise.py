from __future__ import annotations

import numpy as np

from campwatch.io import read_scene
from campwatch.normalise import fit_irmad, fit_relative, radcal_from_mad


def _windows(b, a, v, size=100):
    def gen():
        for r in range(0, v.shape[0], size):
            for c in range(0, v.shape[1], size):
                yield b[:, r:r + size, c:c + size], a[:, r:r + size, c:c + size], v[r:r + size, c:c + size]
    return gen


def test_relative_fit_recovers_known_gain_on_real_pixels():
    s = read_scene("data/sample_tiles/paris/imgs_1", bands=["green", "red", "nir"])
    a = (1.2 * s.data + 0.01).astype(np.float32)
    a[:, :20, :20] += 0.3  # a changed patch is ignored by the robust fit
    fit = fit_relative(_windows(s.data, a, s.valid), s.bands)
    np.testing.assert_allclose(fit.gain, 1.2, rtol=1e-3)
    np.testing.assert_allclose(fit.offset, 0.01, atol=1e-3)
    whole = fit_relative(lambda: [(s.data, a, s.valid)], s.bands)
    np.testing.assert_allclose(fit.gain, whole.gain, rtol=1e-9)


def test_irmad_windowed_matches_whole_and_radcal_on_invariant_pixels():
    b = read_scene("data/sample_tiles/rennes/imgs_1", bands=["blue", "green", "red", "nir"])
    a = read_scene("data/sample_tiles/rennes/imgs_2", grid=b.grid, bands=list(b.bands))
    v = b.valid & a.valid
    w = fit_irmad(_windows(b.data, a.data, v), b.bands, iterations=5)
    m = fit_irmad(lambda: [(b.data, a.data, v)], b.bands, iterations=5)
    np.testing.assert_allclose(w.rho, m.rho, rtol=1e-6)
    assert np.all(w.rho > 0) and np.all(w.rho <= 1)
    rc = radcal_from_mad(_windows(b.data, a.data, v), w)
    assert np.all(rc.gain > 0.3) and np.all(rc.gain < 3)
    # radcal keeps pixels with P(no change) > 0.95: few by construction (5 % of pure noise)
    assert np.all(rc.used_fraction > 0.002)
