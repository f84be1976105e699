"""``campwatch bench``: benchmarks that print figures (never assert timings).

``bench`` is a click group; subcommands live in their own modules listed in
:data:`SUBCOMMANDS` (each defines ``command``), so a new benchmark is one module and one
name here.
"""

from __future__ import annotations

import importlib
import json
import time
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from campwatch.cli.console import progress_bar, result
from campwatch.detect import METHODS

#: Modules (in ``campwatch.cli``) defining extra ``bench`` subcommands as ``command``.
SUBCOMMANDS: tuple[str, ...] = ("bench_vhr",)


@click.group("bench")
def command() -> None:
    """Benchmarks on real labelled data; print per-site and pooled scores."""


@command.command("oscd")
@click.argument("root", type=click.Path(path_type=str))
@click.option("--method", type=click.Choice(METHODS), default="default", show_default=True)
@click.option("--baseline/--no-baseline", default=True, show_default=True,
              help="Also run the naive baseline (CVA on per-band standardised bands + Otsu, no clean-up, "
                   "no co-registration, no cloud mask) side by side.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def oscd(root: str, method: str, baseline: bool, as_json: bool) -> None:
    """Run compare with default settings on every labelled OSCD city under ROOT.

    Labels (cm/<city>-cm.tif: 1 no change, 2 change) are read only to score. Pooled
    scores sum the confusion counts over all pixels of all cities.
    """
    from campwatch.bench.metrics import Confusion
    from campwatch.bench.oscd import bench_oscd_city, oscd_cities

    runs: dict[str, dict[str, Any]] = {method: {"method": method}}
    if baseline and method != "naive-cva":
        runs["naive-cva"] = {"method": "naive-cva", "min_area_m2": 0.0, "coregister": False, "clouds": False}
    rows: dict[str, dict[str, dict]] = {}
    pooled = {k: Confusion(0, 0, 0, 0) for k in runs}
    cities = oscd_cities(root)
    with progress_bar() as bar:
        step = bar.add_task("OSCD cities", total=len(cities) * len(runs))
        for city in cities:
            rows[city.name] = {}
            for name, opts in runs.items():
                bar.update(step, description=f"{city.name}: {name}")
                t0 = time.perf_counter()
                conf, res = bench_oscd_city(city, **opts)
                pooled[name] = pooled[name] + conf
                rows[city.name][name] = {**conf.to_dict(), "changed_fraction": round(res.changed_fraction, 6),
                                         "threshold": round(res.threshold.value, 4),
                                         "seconds": round(time.perf_counter() - t0, 2)}
                bar.advance(step)
    out = {"root": root, "runs": runs, "cities": rows, "pooled": {k: v.to_dict() for k, v in pooled.items()}}
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    table = Table(title=f"OSCD: {len(rows)} labelled cities under {root}")
    table.add_column("city")
    for name in runs:
        for col in ("F1", "P", "R", "changed"):
            table.add_column(f"{name} {col}", justify="right")
    for city_name, r in rows.items():
        table.add_row(city_name, *[f"{r[n][k]:.3f}" if k != "changed_fraction" else f"{r[n][k]:.2%}"
                              for n in runs for k in ("f1", "precision", "recall", "changed_fraction")])
    table.add_row("POOLED", *[v for n in runs for v in (f"{pooled[n].f1:.3f}", f"{pooled[n].precision:.3f}",
                                                         f"{pooled[n].recall:.3f}", "")], style="bold")
    Console(width=max(120, Console().width)).print(table)
    for n in runs:
        result(f"pooled F1 {n}: {pooled[n].f1:.4f}")


for _name in SUBCOMMANDS:
    command.add_command(importlib.import_module(f"campwatch.cli.{_name}").command)
