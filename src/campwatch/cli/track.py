"""``campwatch track SCENE... --aoi ID|PATH -o OUTDIR``: built footprint over time for one AOI."""

from __future__ import annotations

import click

from campwatch.cli.console import detail, progress_bar, result, say
from campwatch.cli.options import Number, aoi_option, band_options, overwrite_option
from campwatch.errors import InvalidSceneError


def _parse_masks(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        scene, sep, mask = v.rpartition("=")
        if not sep or not scene or not mask:
            raise InvalidSceneError(f"bad --cloud-mask {v!r}; write SCENE=MASK, e.g. --cloud-mask a.tif=a_clouds.tif")
        out[scene] = mask
    return out


@click.command("track")
@click.argument("scenes", nargs=-1, required=True, metavar="SCENE[@YYYY-MM-DD]...")
@aoi_option
@click.option("-o", "--output", "outdir", required=True, type=click.Path(path_type=str), metavar="OUTDIR",
              help="Output folder (refused if it exists, unless --overwrite).")
@click.option("--cloud-mask", "cloud_masks", multiple=True, metavar="SCENE=MASK",
              help="Cloud mask raster for one scene (nonzero = cloud); repeatable. A file "
                   "<image>_cloudmask.tif beside an image is used automatically.")
@click.option("--max-cloud", type=Number("max_cloud_fraction"), default=0.5, show_default=True,
              help="Skip a date whose cloud fraction in the AOI is above this.")
@click.option("--min-valid", type=Number("min_valid_fraction"), default=0.5, show_default=True,
              help="Skip a date whose valid fraction in the AOI is below this.")
@click.option("--method", type=click.Choice(["auto", "spectral", "spectral-texture", "vhr"]), default="auto",
              show_default=True, help="Built-up evidence (auto: by pixel size).")
@click.option("--min-object-m2", type=Number("min_object_m2"), default=None, help="Smallest object kept (default: two pixels).")
@click.option("--misregistration-px", type=Number("misregistration_px"), default=0.5, show_default=True,
              help="Residual misregistration between dates, for the significance test.")
@band_options
@overwrite_option
def command(scenes: tuple[str, ...], aoi: str | None, outdir: str, cloud_masks: tuple[str, ...], max_cloud: float,
            min_valid: float, method: str, min_object_m2: float | None, misregistration_px: float,
            profile: str | None, band_map: dict[str, int] | None, overwrite: bool) -> None:
    """Built footprint, objects and growth per date for one AOI.

    Give two or more dates (any order; a missing date is given as PATH@YYYY-MM-DD). Cloudy dates
    are skipped with the reason recorded. Writes timeline.csv, timeline.json, footprint.png and
    growth polygons (GeoPackage, GeoJSON) for each consecutive pair of usable dates.
    """
    from campwatch.io import check_output_dir
    from campwatch.track import track, write_timeline

    check_output_dir(outdir, overwrite=overwrite)  # fail before the slow part
    with progress_bar() as bar:
        step = bar.add_task(f"reading {len(scenes)} scene(s), built-up per date and growth", total=2)
        timeline = track(list(scenes), aoi=aoi, cloud_masks=_parse_masks(cloud_masks), max_cloud_fraction=max_cloud,
                         min_valid_fraction=min_valid, method=method,  # type: ignore[arg-type]
                         min_object_m2=min_object_m2, misregistration_px=misregistration_px, profile=profile,
                         band_map=band_map)
        bar.update(step, advance=1, description=f"writing {outdir}")
        written = write_timeline(timeline, outdir, overwrite=overwrite)
        bar.update(step, advance=1)
    for d in timeline.dates:
        fp = d.footprint
        what = (f"footprint {fp['footprint_m2']:,.0f} ± {fp['footprint_uncertainty_m2']:,.0f} m², "
                f"{fp['n_objects']} objects" if d.status == "used" else "")
        say(f"{d.date}  {d.status:7}  {what}  ({d.reason})")
        detail(f"            {d.path}: cloud {_pct(d.cloud_fraction)} ({d.cloud_source}), valid {_pct(d.valid_fraction)}")
    for p in timeline.pairs:
        s = p.summary()
        pct = f" ({s['net_pct']:+.1f}%)" if s["net_pct"] is not None else ""
        result(f"{s['date_before']} -> {s['date_after']}: net {s['net_m2']:+,.0f} ± {s['net_uncertainty_m2']:,.0f} m²"
               f"{pct}, {s['significance']}; new {s['counts']['new']}, demolished {s['counts']['demolished']}, "
               f"expanded {s['counts']['expanded']}, shrunk {s['counts']['shrunk']}")
    result(f"pixel {timeline.grid.pixel_size_m():.1f} m, AOI geometry_quality {timeline.geometry_quality}; "
           f"wrote {', '.join(str(v) for v in written.values())}")
    if "chart" not in written:
        say("note: footprint.png not written (matplotlib is not installed: pip install campwatch[plot])")


def _pct(x: float | None) -> str:
    return "not assessed" if x is None else f"{x:.1%}"
