"""``campwatch coregister BEFORE AFTER``: estimate the sub-pixel shift between two dates."""

from __future__ import annotations

import json

import click

from campwatch.cli.options import Number, aoi_option


@click.command("coregister")
@click.argument("before", type=click.Path(path_type=str))
@click.argument("after", type=click.Path(path_type=str))
@aoi_option
@click.option("--band", default=None, metavar="NAME",
              help="Common band name to correlate (default: red, else nir, green, blue, swir16).")
@click.option("--max-shift", "max_shift_px", type=Number("max_shift_px"), default=10.0, show_default=True,
              help="Shifts above this many pixels are reported as misregistration, not corrected.")
@click.option("--min-reliability", type=Number("min_reliability"), default=None,
              help="Estimates less reliable than this (0..1) are not trusted. [default: 0.2]")
@click.option("--json", "as_json", is_flag=True, help="Print the estimate as JSON.")
def command(before: str, after: str, aoi: str | None, band: str | None, max_shift_px: float,
            min_reliability: float | None, as_json: bool) -> None:
    """Estimate how far AFTER's content sits from BEFORE's, in BEFORE's pixels.

    dx is positive east, dy positive south. AFTER is read onto BEFORE's grid (cut to
    --aoi when given) by georeferencing; the shift left over is what co-registration
    would correct (between 0.1 px and --max-shift, when reliable). Nothing is written:
    "applied" says whether `coregister` would resample AFTER, and "residual_px" what
    would be left after it did.
    """
    from campwatch.coregister import DEFAULT_MIN_RELIABILITY, coregister
    from campwatch.io import read_scene

    geometry = None
    if aoi is not None:
        from campwatch.aoi import resolve_aoi

        geometry = resolve_aoi(aoi).geometry
    if band is None:
        from campwatch.coregister import PREFERRED_BANDS
        from campwatch.io import open_source

        keys = open_source(before).keys
        band = next((b for b in PREFERRED_BANDS if b in keys), keys[0])
    first = read_scene(before, aoi=geometry, bands=[band])
    second = read_scene(after, grid=first.grid, bands=[band])
    # The CLI only reports; the warning text goes into "reason" rather than to stderr twice.
    import warnings

    from campwatch.errors import MisregistrationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MisregistrationWarning)
        _, shift = coregister(first, second, max_shift_px=max_shift_px, band=band,
                              min_reliability=DEFAULT_MIN_RELIABILITY if min_reliability is None else min_reliability)
    record = {
        **shift.to_dict(),
        "before": before,
        "after": after,
        "before_date": first.date.isoformat() if first.date else None,
        "after_date": second.date.isoformat() if second.date else None,
        "pixel_size_m": round(first.grid.pixel_size_m(), 3),
        "aoi": aoi,
        "grid": first.grid.to_dict(),
    }
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    px = record["pixel_size_m"]
    click.echo(f"{second.label} vs {first.label} on the {shift.band} band, {first.grid.height} x {first.grid.width} px "
               f"of ~{px} m")
    click.echo(f"  dx = {shift.dx_px:+.2f} px ({shift.dx_px * px:+.1f} m east), "
               f"dy = {shift.dy_px:+.2f} px ({shift.dy_px * px:+.1f} m south), |shift| = {shift.magnitude_px:.2f} px")
    click.echo(f"  reliability = {shift.reliability:.2f}")
    verdict = "would be corrected" if shift.applied else "would not be corrected"
    residual = f"; residual after correction {shift.residual_px:.2f} px" if shift.applied and shift.residual_px is not None else ""
    click.echo(f"  {verdict}: {shift.reason}{residual}")
