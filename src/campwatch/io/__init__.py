"""The I/O edge: find the bands of a scene, read an AOI window onto a grid, write outputs atomically.

Only this package (and the AOI reader) opens files.  Reading is two steps:

1. :func:`open_source` inspects a path (a multi-band raster, a folder of per-band
   files such as a Sentinel-2 ``IMG_DATA`` or L2A ``R10m/R20m/R60m`` tree, or any
   other GDAL-readable raster) and returns a :class:`SceneSource`: which file and
   band index hold each common-name band, the sensor profile, and the date.
2. :func:`read_source` reads a source onto a target :class:`~campwatch.grid.Grid`.
   When the file's pixels already lie on the grid's lattice it is a plain windowed
   read; otherwise the band is warped (``WarpedVRT``) onto the grid.  This is how the
   second date is aligned to the first: by georeferencing, never by array shape.

:func:`read_scene` does both, choosing the grid from the AOI when none is given.

The modules, from the bottom up:

- :mod:`~campwatch.io.datasets`: opening rasters (local files only, whole GeoTIFFs, handles kept open
  while streaming);
- :mod:`~campwatch.io.source`: :class:`BandRef` and :class:`SceneSource`, a scene on disk;
- :mod:`~campwatch.io.dates`: the acquisition date from tags, ``dates.txt`` or file names;
- one module per layout: :mod:`~campwatch.io.sentinel2` and :mod:`~campwatch.io.landsat` (a folder
  of one product's band files), :mod:`~campwatch.io.multiband` (one multi-band raster), and
  :mod:`~campwatch.io.folder`, which hands a band folder to the sensor its file names show;
- :mod:`~campwatch.io.readers`: :func:`open_source`, the grid a scene is read onto, and reading;
- :mod:`~campwatch.io.writers`: atomic outputs, rasters, PNG, vectors and GeoPackage layers, JSON.

This package re-exports the public names; import from a submodule only what is not listed here.
"""

from campwatch.io.datasets import kept_open, refuse_remote, require_complete
from campwatch.io.folder import RASTER_SUFFIXES
from campwatch.io.readers import (
    apply_user_mask,
    block_shape,
    open_source,
    read_raster,
    read_scene,
    read_source,
    scene_grid,
    utm_crs_for,
)
from campwatch.io.sentinel2 import S2_BASELINE_04_START
from campwatch.io.source import BandRef, SceneSource
from campwatch.io.writers import (
    OUTPUT_MARKER,
    atomic_dir,
    atomic_path,
    check_output_dir,
    check_writable,
    output_lock,
    png_bytes,
    raster_writer,
    to_json,
    vector_stamp,
    write_json,
    write_layers,
    write_png,
    write_raster,
    write_vector,
)

__all__ = [
    "BandRef",
    "SceneSource",
    "apply_user_mask",
    "atomic_dir",
    "atomic_path",
    "check_output_dir",
    "check_writable",
    "output_lock",
    "open_source",
    "read_raster",
    "read_scene",
    "read_source",
    "refuse_remote",
    "scene_grid",
    "utm_crs_for",
    "vector_stamp",
    "write_layers",
    "write_vector",
    "write_raster",
    "raster_writer",
    "block_shape",
    # public in campwatch.io before it was a package, and imported from it, but not listed then
    "OUTPUT_MARKER",
    "RASTER_SUFFIXES",
    "S2_BASELINE_04_START",
    "kept_open",
    "png_bytes",
    "require_complete",
    "to_json",
    "write_json",
    "write_png",
]
