from __future__ import annotations

import numpy as np
import pytest

from campwatch.bench.metrics import Confusion, confusion, labels_to_bool
from campwatch.errors import GridMismatchError
from campwatch.io import read_raster, read_scene


def test_label_compared_with_itself_is_perfect():
    g = read_scene("data/sample_tiles/bercy/imgs_1", bands=["blue"]).grid
    lab, _ = read_raster("data/sample_tiles/bercy/cm/bercy-cm.tif", grid=g)
    truth, ok = labels_to_bool(lab)
    c = confusion(truth, truth, valid=ok)
    assert c.f1 == c.iou == c.oa == c.kappa == 1.0
    assert c.tp == int(truth.sum()) > 0
    none = confusion(np.zeros_like(truth), truth, valid=ok)
    assert none.f1 == 0.0 and none.recall == 0.0


def test_pooled_counts_sum():
    a, b = Confusion(1, 2, 3, 4), Confusion(10, 0, 0, 90)
    assert (a + b).f1 == pytest.approx(2 * 11 / (2 * 11 + 2 + 3))


def test_shape_mismatch():
    with pytest.raises(GridMismatchError):
        confusion(np.zeros((2, 2), bool), np.zeros((3, 3), bool))
