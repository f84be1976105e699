"""``campwatch bench vhr``: VHR mode and the naive baseline on the shared LEVIR-CD and xBD pairs.

Registered in ``campwatch bench`` through ``campwatch.cli.bench.SUBCOMMANDS``; also runs
as ``python -m campwatch.cli.bench_vhr``.  Prints figures; asserts nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from campwatch.cli.console import progress_bar


@click.command("vhr")
@click.option("--data", "data", type=click.Path(file_okay=False, path_type=Path), default=Path("../shared/data"),
              show_default=True, help="Folder holding vhr-levircd/ and vhr-xbd-joplin/.")
@click.option("--levir", "levir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Score these LEVIR-like pairs (A/, B/, label/) instead, e.g. held-out pairs.")
@click.option("--xbd", "xbd", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Score these xBD-like pairs (images/, labels/) instead.")
@click.option("--only", type=click.Choice(["levir", "xbd"]), default=None, help="Run one set only.")
@click.option("--all", "protocol", is_flag=True,
              help="The validation protocol: every vhr-* folder of --data on its own, for each candidate "
                   "parameter set, and the leave-one-dataset-out view (several minutes).")
@click.option("--json", "as_json", is_flag=True, help="Print the full result (per pair) as JSON.")
def command(data: Path, levir: Path | None, xbd: Path | None, only: str | None, protocol: bool,
            as_json: bool) -> None:
    """Pixel F1 on LEVIR-CD and building-level demolition recall on xBD, beside naive RGB CVA + Otsu."""
    from campwatch.bench.vhr import (  # loaded when the bench runs
        format_protocol,
        format_report,
        run_levir,
        run_protocol,
        run_xbd,
    )

    if protocol:
        with progress_bar() as bar:
            bar.add_task(f"validation protocol on every vhr-* folder of {data} (several minutes)", total=None)
            res = run_protocol(data)
        click.echo(json.dumps(res, indent=2, default=str) if as_json else format_protocol(res))
        return
    with progress_bar() as bar:
        sets = [s for s in ("levir", "xbd") if only in (None, s)]
        step = bar.add_task("VHR sets", total=len(sets))
        out = {}
        for s in sets:
            bar.update(step, description=f"{'LEVIR-CD' if s == 'levir' else 'xBD'} pairs, VHR mode and naive")
            out[s] = (run_levir(levir or data / "vhr-levircd") if s == "levir"
                      else run_xbd(xbd or data / "vhr-xbd-joplin"))
            bar.advance(step)
    click.echo(json.dumps(out, indent=2, default=str) if as_json else format_report(out))


if __name__ == "__main__":  # pragma: no cover
    command()
