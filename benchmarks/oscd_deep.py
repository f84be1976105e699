"""Does deep-feature change confirm the 10 m detector's change?  A measurement for issue 18.

Not part of the test suite; it prints figures and asserts nothing.  For each labelled OSCD
city of ``../shared/data/oscd`` it runs the default ``compare`` (no labels), computes
:func:`campwatch.vhr.deep.deep_change` on the RGB bands of both dates (EfficientNet-lite0's
ImageNet features, no training), and scores, against the city's labels:

* ``default``: the default change mask;
* ``deep``: the deep change above its own Otsu cut, alone;
* ``mean>1``: the mean of the score over its threshold and the deep change over its Otsu cut, above 1
  (the rule VHR mode keeps above 1 m pixels);
* ``default&deep``: the default mask where the deep change is also above its Otsu cut;
* ``default&deep>0.75``: the same at three quarters of that cut.

None of these has a parameter chosen per city, so the leave-one-city-out figure of each is
its pooled figure.  Usage::

    python benchmarks/oscd_deep.py [--oscd ../shared/data/oscd]
"""

from __future__ import annotations

import argparse
import functools
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from campwatch.bench.metrics import Confusion, confusion
from campwatch.bench.oscd import labels_to_bool, oscd_cities
from campwatch.compare import compare_scenes, read_pair
from campwatch.io import read_raster
from campwatch.vhr import rgb_stack
from campwatch.vhr.common import otsu_cut
from campwatch.vhr.deep import deep_change

ROOT = Path(__file__).resolve().parents[1]


def rules(result: Any, before: Any, after: Any) -> tuple[dict[str, np.ndarray], float]:
    """The masks scored, and the seconds deep_change took."""
    valid = result.mask != 255
    t = time.perf_counter()
    d = deep_change(rgb_stack(before), rgb_stack(after), valid)
    seconds = time.perf_counter() - t
    cut = otsu_cut(d[valid])
    score = np.nan_to_num(result.score)
    changed = result.mask == 1
    return {"default": changed, "deep": (d > cut) & valid,
            "mean>1": (0.5 * (score / result.threshold.value + d / cut) > 1) & valid,
            "default&deep": changed & (d > cut), "default&deep>0.75": changed & (d > 0.75 * cut)}, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--oscd", default=str(ROOT.parent / "shared" / "data" / "oscd"))
    args = ap.parse_args()
    pooled: dict[str, list[Confusion]] = {}
    for city in oscd_cities(args.oscd):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            before, after, _ = read_pair(city / "imgs_1", city / "imgs_2")  # read once, as compare_files reads
            result = compare_scenes(before, after)
            labels, _ = read_raster(city / "cm" / f"{city.name}-cm.tif", grid=result.grid)
        truth, ok = labels_to_bool(labels)
        cells = [f"{city.name:9s}"]
        masks, seconds = rules(result, before, after)
        for name, mask in masks.items():
            c = confusion(mask, truth, valid=ok)
            pooled.setdefault(name, []).append(c)
            cells.append(f"{name} {c.f1:.3f}")
        cells.append(f"deep_change {seconds:.1f} s")
        print(" | ".join(cells), flush=True)
    for name, cs in pooled.items():
        c = functools.reduce(lambda x, y: x + y, cs)
        print(f"pooled {name:18s} F1 {c.f1:.3f} (P {c.precision:.3f}, R {c.recall:.3f})")


if __name__ == "__main__":
    main()
