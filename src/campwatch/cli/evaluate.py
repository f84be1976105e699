"""``campwatch evaluate PRED LABEL``: precision, recall, F1, IoU, kappa and overall accuracy."""

from __future__ import annotations

import json

import click


@click.command("evaluate")
@click.argument("pred", type=click.Path(path_type=str))
@click.argument("label", type=click.Path(path_type=str))
@click.option("--change-value", type=int, default=2, show_default=True, help="Label value meaning change.")
@click.option("--no-change-value", type=int, default=1, show_default=True, help="Label value meaning no change.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(pred: str, label: str, change_value: int, no_change_value: int, as_json: bool) -> None:
    """Score a change mask PRED (1 change, 0 no change, 255 no data) against LABEL.

    LABEL follows OSCD by default (1 no change, 2 change); a label without
    georeferencing is taken to lie on PRED's grid.  No-data predictions count as no change.
    """
    from campwatch.bench.metrics import confusion, labels_to_bool, require_change_mask
    from campwatch.io import read_raster

    mask, grid = read_raster(pred)
    require_change_mask(mask, name=pred)
    labels, _ = read_raster(label, grid=grid)
    truth, ok = labels_to_bool(labels, change=change_value, no_change=no_change_value)
    if not ok.any():
        from campwatch.errors import InvalidSceneError

        found = ", ".join(str(v) for v in sorted(set(labels.ravel().tolist()))[:8])
        raise InvalidSceneError(
            f"{label}: no pixel has the label values {no_change_value} (no change) or {change_value} (change); "
            f"it holds {found}. Pass --change-value/--no-change-value (e.g. 255 and 0 for cm.png), or check that "
            "PRED and LABEL are not swapped")
    c = confusion(mask == 1, truth, valid=ok)
    d = c.to_dict()
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    click.echo(f"pixels scored: {c.n}  (tp {c.tp}, fp {c.fp}, fn {c.fn}, tn {c.tn})")
    for k in ("precision", "recall", "f1", "iou", "kappa", "oa"):
        click.echo(f"{k:>9}: {d[k]:.4f}")
