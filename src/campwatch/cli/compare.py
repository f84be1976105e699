"""``campwatch compare BEFORE AFTER -o OUTDIR``: change mask, score, polygons, summary and quicklook."""

from __future__ import annotations

import click

from campwatch.cli.console import detail, progress_bar, result, say
from campwatch.cli.options import Number, aoi_option, band_options, overwrite_option, threshold_callback
from campwatch.detect import METHODS


@click.command("compare")
@click.argument("before", type=click.Path(path_type=str))
@click.argument("after", type=click.Path(path_type=str))
@click.option("-o", "--output", "--out", "outdir", required=True, type=click.Path(path_type=str), help="Output folder.")
@aoi_option
@click.option("--method", type=click.Choice(METHODS), default="default", show_default=True,
              help="Change detector (see campwatch.detect).")
@click.option("--threshold", default="auto", show_default=True, metavar="auto|otsu|ki|chi2|NUMBER",
              callback=threshold_callback,
              help="Threshold method, or a fixed value in score units.")
@click.option("--alpha", type=Number("alpha"), default=1e-6, show_default=True, help="Significance level of the chi2 test.")
@click.option("--min-area", "min_area_m2", type=Number("min_area_m2"), default=200.0, show_default=True,
              help="Minimum mapping unit in m².")
@click.option("--opening", "opening_radius", type=Number("opening_radius"), default=0, show_default=True,
              help="Morphological opening radius in pixels (0: none).")
@click.option("--increase-only", is_flag=True, help="Keep only increases of the built-up index.")
@click.option("--no-coregister", is_flag=True, help="Do not estimate or correct a shift between the dates.")
@click.option("--clouds/--no-clouds", default=None, help="Mask clouds (default: on for Sentinel-2 without SCL).")
@click.option("--structures/--no-structures", default=True, show_default=True,
              help="Also measure built-up footprint growth (layer 'structures' of changes.gpkg, structures.geojson, summary 'structures').")
@click.option("--deep-confirm/--no-deep-confirm", "deep_confirm", default=True, show_default=True,
              help="Keep a change region only where a pretrained network's features changed too (default "
                   "method; costs about 1 s per megapixel and date).")
@click.option("--stream/--in-memory", "stream", default=None,
              help="Process window by window at bounded memory (default: without --aoi, when BEFORE has more "
                   "than 4096 x 4096 pixels of 5 m or more).")
@click.option("--workers", type=Number("workers"), default=2, show_default=True, help="Threads when streaming.")
@click.option("--dask", "dask_address", default=None, metavar="ADDRESS",
              help="Stream on this dask.distributed scheduler (implies --stream).")
@click.option("--min-observed", "min_observed", type=Number("min_observed_fraction"), default=0.5, show_default=True,
              help="Share of the AOI (of BEFORE's grid without --aoi) that must be observed on both dates; below "
                   "it nothing is written and the exit code is 3 (insufficient data).")
@band_options
@overwrite_option
def command(before: str, after: str, outdir: str, aoi: str | None, method: str, threshold: tuple[str, float | None],
            alpha: float,
            min_area_m2: float, opening_radius: int, increase_only: bool, no_coregister: bool, clouds: bool | None,
            structures: bool, stream: bool | None, workers: int, dask_address: str | None, profile: str | None,
            band_map: dict[str, int] | None, min_observed: float, overwrite: bool, deep_confirm: bool) -> None:
    """Compare BEFORE and AFTER (files or band folders); outputs are on BEFORE's grid.

    Without --aoi the whole overlap is processed.  BEFORE must not be dated after AFTER.
    Exit code 0 when measured, 2 for bad input, 3 when too little is observed on both dates
    to state any figure (then nothing is written).
    """
    from campwatch.compare import compare_scenes, read_pair, result_flags, write_compare_outputs
    from campwatch.io import check_output_dir

    check_output_dir(outdir, overwrite=overwrite)  # refuse before any work
    t, value = threshold
    if dask_address:
        stream = True
    if stream is None and aoi is None:
        from campwatch.engine import auto_stream

        stream = auto_stream(before, profile=profile, band_map=band_map)
    if stream:
        if aoi is not None:
            raise click.BadParameter("streaming processes the whole scene; drop --aoi or use --in-memory",
                                     param_hint="--stream")
        from campwatch.engine import PROGRESS_STAGES, compare_streaming

        with progress_bar() as bar:
            tasks = {"": bar.add_task(f"streaming {before} -> {after}: reading and co-registering", total=None)}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    bar.update(tasks[next(reversed(tasks))], visible=False)
                    tasks[stage] = bar.add_task(PROGRESS_STAGES[stage], total=total)
                bar.update(tasks[stage], completed=done)

            r = compare_streaming(before, after, outdir, method=method, threshold=t, value=value, alpha=alpha,
                                  min_area_m2=min_area_m2, opening_radius=opening_radius, increase_only=increase_only,
                                  coregister=not no_coregister, clouds=clouds, profile=profile, band_map=band_map,
                                  workers=workers, client=dask_address, overwrite=overwrite, structures=structures,
                                  min_observed_fraction=min_observed, progress=progress, deep_confirm=deep_confirm)
        s = r.summary
        result(f"{r.method} (streamed, {s['processing']['executor']}): changed {r.changed_area_m2:,.0f} m² "
               f"({s['changed_fraction']:.3%} of valid), threshold {r.threshold.value:.4g} "
               f"({r.threshold.method}), observed {_observed(s['coverage'])}, {s['processing']['wall_s']:.1f} s")
        if r.threshold.note:
            say(f"note: {r.threshold.note}")
        if s["confidence_reasons"]:
            result(f"LOW CONFIDENCE: {'; '.join(s['confidence_reasons'])} (every polygon carries this in its "
                   "reason column)")
        for note in s["processing"]["not_done"]:
            say(f"note: {note}")
        detail(f"timings (s): {', '.join(f'{k} {v}' for k, v in s['processing']['timings_s'].items())}")
        _details(s.get("coregistration"), s.get("clouds"))
        result(f"outputs in {outdir}: {', '.join(p.name for p in r.paths.values())}")
        return
    with progress_bar() as bar:
        step = bar.add_task("reading BEFORE and AFTER", total=3)
        b, a, aoi_obj = read_pair(before, after, aoi=aoi, method=method, profile=profile, band_map=band_map)
        bar.update(step, advance=1, description="detecting change" + (" and structures" if structures else ""))
        res = compare_scenes(b, a, method=method, threshold=t, value=value, alpha=alpha,  # type: ignore[arg-type]
                             min_area_m2=min_area_m2, opening_radius=opening_radius, increase_only=increase_only,
                             coregister=not no_coregister, clouds=clouds, aoi=aoi_obj, structures=structures,
                             min_observed_fraction=min_observed, deep_confirm=deep_confirm)
        bar.update(step, advance=1, description=f"writing {outdir}")
        paths = write_compare_outputs(res, outdir, before=b, after=a, overwrite=overwrite)
        bar.update(step, advance=1)
    result(f"{res.method}: changed {res.changed_area_m2:,.0f} m² ({res.changed_fraction:.3%} of valid), "
           f"threshold {res.threshold.value:.4g} ({res.threshold.method}), "
           f"observed {_observed(res.params['coverage'])}")
    if res.threshold.note:
        say(f"note: {res.threshold.note}")
    if flags := result_flags(res):
        result(f"LOW CONFIDENCE: {'; '.join(flags)} (every polygon carries this in its reason column)")
    if res.structures is not None and "sentence" in (s := res.structures.summary()):
        result(f"VHR mode (buildings): {s['sentence']}")
    elif res.structures is not None:
        c, sig = s["counts"], s["significant_counts"]
        result(f"built-up footprint {s['footprint_before_m2']:,.0f} -> {s['footprint_after_m2']:,.0f} m² "
               f"(net {s['net_m2']:+,.0f} ± {s['net_uncertainty_m2']:,.0f} m², {s['significance']})")
        result(f"built-up objects (significant and confirmed by the change detector / all that changed "
               f"class): new {sig['new']}/{c['new']}, demolished {sig['demolished']}/{c['demolished']}, "
               f"expanded {sig['expanded']}/{c['expanded']}, shrunk {sig['shrunk']}/{c['shrunk']}; at "
               f"{s['pixel_size_m']:.0f} m these are built-up patches, not buildings")
    _details(res.coregistration, res.params.get("clouds"))
    result(f"outputs in {outdir}: {', '.join(p.name for p in paths.values())}")


def _details(shift: dict | None, clouds: dict | None) -> None:  # type: ignore[type-arg]
    """The -v lines: the shift estimated between the dates and the cloud fractions masked."""
    if shift:
        detail(f"co-registration: dx {shift.get('dx_px', float('nan')):+.2f} px, dy {shift.get('dy_px', float('nan')):+.2f} px, "
               f"{'applied' if shift.get('applied') else 'not applied'}")
    if clouds:
        detail(f"clouds: {'masked' if clouds.get('masked') else 'not masked'}"
               + (f", BEFORE {clouds['before_fraction']:.1%}, AFTER {clouds['after_fraction']:.1%}"
                  if clouds.get("before_fraction") is not None and clouds.get("after_fraction") is not None else ""))


def _observed(cov: dict) -> str:  # type: ignore[type-arg]
    of = "the AOI" if cov["reference"] == "aoi" else "BEFORE's grid"
    return f"{cov['observed_fraction']:.1%} of {of} ({cov['observed_area_m2']:,.0f} m²)"
