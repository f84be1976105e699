"""Options shared by several commands, defined once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class Number(click.ParamType):
    """A numeric option checked against :data:`campwatch.params.RANGES` (NaN and infinities refused)."""

    def __init__(self, key: str) -> None:
        from campwatch.params import RANGES

        self.key = key
        self.range = RANGES[key]
        self.name = f"{'integer' if self.range.integer else 'number'} {self.range.text()}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from campwatch.params import InvalidParameterError

        if value is None:
            return None
        name = param.opts[0] if param is not None and param.opts else self.key
        try:
            return self.range.check(name, value)
        except InvalidParameterError as exc:
            self.fail(str(exc), param, ctx)


def threshold_callback(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, float | None]:
    """``--threshold auto|otsu|ki|chi2|NUMBER`` as (method, value); a NaN or infinite number is refused."""
    from campwatch.params import InvalidParameterError, check_threshold

    try:
        return check_threshold(value)
    except InvalidParameterError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def overwrite_option(f: F) -> F:
    return click.option("--overwrite", is_flag=True, help="Replace existing outputs.")(f)


def aoi_option(f: F) -> F:
    return click.option("--aoi", "aoi", default=None, metavar="ID|PATH",
                        help="A catalogue AOI id or alias (see `campwatch aois list`), or an AOI file.")(f)


def _band_map(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, int] | None:
    """``--bands NAME=INDEX,...`` parsed once, for every command that takes it."""
    from campwatch.profiles import parse_band_override

    return parse_band_override(value) if value else None


def band_options(f: F) -> F:
    from campwatch.profiles import PROFILES

    f = click.option("--profile", type=click.Choice(sorted(PROFILES)), default=None,
                     help="Override the detected sensor profile.")(f)
    f = click.option("--bands", "band_map", default=None, metavar="NAME=INDEX,...", callback=_band_map,
                     help="Map band indexes of a multi-band file, e.g. red=1,green=2,blue=3,nir=4.")(f)
    return f
