"""How much each chosen cut of VHR mode moves the validation figures; prints figures, asserts nothing.

Run from the repository root::

    python benchmarks/vhr_sensitivity.py [--shared ../shared/data] [--factors 0.75,1.25]
        [--only building_threshold,min_texture_gain] [--sets vhr-levircd,vhr-xbd-joplin] [--workers 2]

Issue 15 asks that no threshold of VHR mode be fitted to the shared datasets.  Most of the cuts
of the building and rubble tests were chosen as round numbers while looking at LEVIR-CD and
xBD (``docs/vhr.md``, "Every constant").  This benchmark measures, for every such cut that
``vhr_change`` exposes and that is not set in physical units (its own keyword arguments, and :func:`campwatch.vhr.debris_objects`'
through ``rubble=``), the figures of ``campwatch bench vhr`` with the cut multiplied by each
factor, all else at its default: pooled pixel F1 on every pixel-labelled set, destroyed and
undamaged shares reported demolished on xBD, and the share flagged on the unlabelled pair.
A cut whose figures barely move is not fitted in any sense that matters; one that moves a
dataset's figure by more than a few hundredths is where the figures are fragile.

Tuple-valued cuts (``loose``, ``small``) are scaled element by element, areas included.
Fractions are capped at 1.  Cuts that ``vhr_change`` does not expose (the 20th brightness
percentile for shadow, the vegetation cut, road removal, the 0.3 overlap) are not measured here.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from campwatch.bench.vhr import run_dataset, vhr_datasets
from campwatch.vhr import debris_objects, vhr_change

#: vhr_change's own cuts chosen on shared pairs, and debris_objects' (passed through ``rubble=``);
#: the ones set in metres or m² (tolerance, smoothing, areas, segment scale) are not scaled here.
CHANGE_CUTS = ("otsu_fraction", "min_fraction", "whole_fraction", "lost_fraction", "building_threshold",
               "min_shadow_fraction", "max_similarity")
RUBBLE_CUTS = ("max_roof_cv", "min_texture_gain", "max_debris_cv", "min_colour_change", "max_darkening", "min_solidity",
               "loose", "max_similarity", "strong_texture_gain", "small")
#: cuts that are shares or correlations: never above 1
_FRACTIONS = {"min_fraction", "whole_fraction", "lost_fraction", "max_similarity", "min_solidity"}


def defaults() -> dict[str, dict[str, Any]]:
    """The default of every measured cut, by where it is passed (``change`` or ``rubble``)."""
    sig_c = inspect.signature(vhr_change).parameters
    sig_r = inspect.signature(debris_objects).parameters
    return {"change": {k: sig_c[k].default for k in CHANGE_CUTS},
            "rubble": {k: sig_r[k].default for k in RUBBLE_CUTS}}


def scaled(name: str, value: Any, factor: float) -> Any:
    """``value`` times ``factor`` (element-wise for tuples; shares and correlations capped at 1)."""
    if isinstance(value, tuple):
        return tuple(scaled(name, v, factor) for v in value)
    out = round(float(value) * factor, 6)
    return min(out, 1.0) if name in _FRACTIONS else out


def settings(factors: list[float], only: set[str] | None) -> list[tuple[str, dict[str, Any]]]:
    """(label, vhr_change params) for the defaults and for every cut times every factor."""
    out: list[tuple[str, dict[str, Any]]] = [("default", {})]
    for where, cuts in defaults().items():
        for name, value in cuts.items():
            if only and name not in only:
                continue
            for f in factors:
                new = scaled(name, value, f)
                params = {name: new} if where == "change" else {"rubble": {name: new}}
                out.append((f"{where}.{name} x{f:g} = {new}", params))
    return out


def score(task: tuple[str, str, str, dict[str, Any]]) -> tuple[str, str, dict[str, float]]:
    """Run one dataset with one parameter set; the figures of ``campwatch bench vhr``."""
    label, name, kind, params = task
    path = Path(name)
    r = run_dataset(kind, path, params=params)
    if kind == "pixels":
        figs = {"f1": r["vhr"]["f1"]}
    elif kind == "xbd":
        figs = {"destroyed": r["vhr"]["destroyed_recall"], "undamaged": r["vhr"]["undamaged_false_alarm"]}
    else:
        figs = {"flagged": r["vhr"]["flagged_fraction"]}
    return label, path.name, figs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default="../shared/data")
    ap.add_argument("--factors", default="0.75,1.25", help="comma-separated multipliers of each cut")
    ap.add_argument("--only", default="", help="comma-separated cut names (default: all)")
    ap.add_argument("--sets", default="", help="comma-separated dataset folders (default: every vhr-* folder)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    factors = [float(f) for f in args.factors.split(",")]
    only = set(filter(None, args.only.split(","))) or None
    sets = [(n, k, p) for n, k, p in vhr_datasets(args.shared) if not args.sets or n in args.sets.split(",")]
    runs = settings(factors, only)
    tasks = [(label, str(p), k, params) for label, params in runs for _, k, p in sets]
    t0 = time.perf_counter()
    table: dict[str, dict[str, dict[str, float]]] = {}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for label, name, figs in pool.map(score, tasks):
            table.setdefault(label, {})[name] = figs
            print(f"{time.perf_counter() - t0:6.0f} s  {label}  {name}  {figs}", file=sys.stderr, flush=True)
    cols = [(n, key) for n, k, _ in sets for key in {"pixels": ["f1"], "xbd": ["destroyed", "undamaged"]}.get(k, ["flagged"])]
    base = table["default"]
    print(f"{len(runs)} settings x {len(sets)} datasets in {time.perf_counter() - t0:.0f} s "
          f"(factors {factors}); each figure is the change against the default")
    print("| setting | " + " | ".join(f"{n.removeprefix('vhr-')} {key}" for n, key in cols) + " | largest move |")
    print("|---|" + "---|" * (len(cols) + 1))
    for label, _ in runs:
        cells, worst = [], 0.0
        for n, key in cols:
            v = table[label][n][key]
            if label == "default":
                cells.append(f"{v:.3f}")
            else:
                d = v - base[n][key]
                worst = max(worst, abs(d))
                cells.append(f"{d:+.3f}")
        print(f"| {label} | " + " | ".join(cells) + f" | {'' if label == 'default' else f'{worst:.3f}'} |")


if __name__ == "__main__":
    main()
