"""Rebuild the AOI catalogue in ``aois/`` from the shared reference and the sample tiles.

Usage (from the repository root)::

    .venv/bin/python aois/build_catalogue.py [--reference ../shared/reference/camps_reference.geojson]

Writes one ``aois/<id>.geojson`` per facility in the reference, ``aois/reference_metadata.json`` (the
reference's collection-level metadata: system-wide estimates, historical camps, what was not found, licence
notes) and ``aois/samples/sample-<city>.geojson`` for the sample tiles. The output is deterministic: rerun it
and ``git diff`` shows only what the inputs changed. The generated files are committed, so users do not need
``../shared``.

Every property of the reference is kept unchanged; the script only adds ``aliases``, ``caveats`` and
``catalogue_provenance``. It does not touch geometries, except that hand-digitised files
(``geometry_quality`` other than ``approximate``) are never overwritten: their geometry and properties are kept
and the script says so.

Alias rule (see aois/README.md): generated aliases are the id, the place names in the name's parentheses,
and for kwanliso only the bare camp number with the prefixes ``camp``/``kwanliso``/``kwalliso``/``kwan-li-so``;
kyo-hwa-so get ``kyohwaso N``/``kyo-hwa-so N``. An alias that two facilities share (``kaechon``, ``kyohwaso 8``)
is kept in both files and listed in ``shared_aliases``; ``campwatch.aoi.resolve_aoi`` refuses it and names both
facilities, so an alias never silently picks one of two places.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import rasterio
import shapely
from pyproj import Transformer
from rasterio.errors import NotGeoreferencedWarning
from scipy import ndimage
from shapely.geometry import box, mapping, shape


def shp_transform(fn, geom):
    return shapely.transform(geom, lambda x, y: fn(x, y), interleaved=False)


ROOT = Path(__file__).resolve().parents[1]
AOIS = ROOT / "aois"
DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference" / "camps_reference.geojson"
SAMPLE_CITIES = {
    "bercy": "Paris, Bercy (sample tile)",
    "paris": "Paris, 13th/14th arrondissements (sample tile)",
    "rennes": "Rennes (sample tile)",
}
OSCD_SOURCE = {
    "title": "Onera Satellite Change Detection dataset (OSCD): Daudt, Le Saux, Boulch, Gousseau, IGARSS 2018; "
             "change labels CC BY-NC-SA 4.0",
    "url": "https://rcdaudt.github.io/oscd/",
}
FIRST = ("id", "name", "aliases", "kind", "camp_number", "province", "status", "status_confidence",
         "geometry_quality", "caveats")

# Location disagreements named in ../shared/reference/README.md; the numbers are recomputed from
# coordinate_candidates below, these only say which features the README flags.
README_LOCATION_CAVEATS = {"kwanliso-16", "kwanliso-22", "kyohwaso-11"}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _place_names(name: str) -> list[str]:
    m = re.search(r"\(([^)]*)\)", name)
    return [p.strip() for p in m.group(1).split("/") if p.strip()] if m else []


def _generated_aliases(p: dict) -> list[str]:
    out = [p["id"], *_place_names(p["name"])]
    n, kind = p.get("camp_number"), p.get("kind")
    if kind == "kwanliso" and n is not None:
        out += [str(n), f"camp {n}", f"kwanliso {n}", f"kwalliso {n}", f"kwan-li-so {n}", f"kwanliso-{n}",
                f"kwan-li-so no. {n}", f"political prison camp {n}"]
    elif kind == "kyohwaso" and n is not None:
        out += [f"kyohwaso {n}", f"kyo-hwa-so {n}", f"kyohwaso-{n}", f"kyo-hwa-so no. {n}"]
    if p["id"] == "restricted-choma-bong":
        out += ["choma-bong", "choma bong"]
    return out


def _key(text: str) -> str:
    # Same normalisation as campwatch.aoi._key (kept here so the script runs on the reference alone).
    import unicodedata

    d = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in d if ch.isalnum() and not unicodedata.combining(ch))


def _caveats(p: dict, geom, others: dict) -> list[str]:
    gp = p.get("geometry_params") or {}
    out = [
        f"Geometry is approximate ({p.get('geometry_method')}): {gp.get('rule', 'see geometry_params')}. "
        "It is not a published perimeter; areas and changes measured inside it are not camp figures until "
        "the geometry is replaced by a digitised perimeter (see aois/README.md)."
    ]
    csrc = (p.get("center") or {}).get("source")
    centre = csrc.get("title", "the chosen centre") if isinstance(csrc, dict) else str(csrc or "the chosen centre")
    far = [c for c in p.get("coordinate_candidates") or []
           if (c.get("dist_from_center_km") or 0) >= 1.0 and "not a centre" not in c["source"]["title"]]
    if p["id"] in README_LOCATION_CAVEATS or any(c["dist_from_center_km"] >= 3.0 for c in far):
        for c in far:
            out.append(f"Published coordinates differ: {c['source']['title']} gives ({c['lat']}, {c['lon']}), "
                       f"{c['dist_from_center_km']} km from the chosen centre ({centre}); "
                       f"{'inside' if c.get('inside_geometry') else 'OUTSIDE'} the draft geometry.")
    if p["id"] == "kyohwaso-11":
        out.append("HRNK's placemark is 12.3 km from the coordinate written in its own description "
                   "(reference README); the location is unresolved.")
    if "disputed" in str(p.get("status", "")) or "contested" in str(p.get("status_detail", "")).lower():
        out.append(f"Status is contested ({p.get('status')}, confidence {p.get('status_confidence')}): sources "
                   "disagree on whether it operates; read status_detail and status_sources before describing "
                   "the facility as open or closed.")
    elif p.get("status_confidence") == "low":
        out.append(f"Status confidence is low ({p.get('status')}); read status_detail and status_sources.")
    if str(p.get("notes", "")).startswith("Only source is the HRNK"):
        out.append("Only source is the HRNK location map: location and status are unverified.")
    for oid, ogeom in others.items():
        if oid != p["id"] and geom.intersects(ogeom) and geom.intersection(ogeom).area > 0:
            out.append(f"The draft geometry overlaps {oid}'s; change found in the overlap belongs to either.")
    return out


def build_camps(reference: Path) -> list[Path]:
    ref = json.loads(reference.read_text(encoding="utf-8"))
    feats = ref["features"]
    counts = Counter(k for f in feats
                     for k in {_key(a) for a in [*_generated_aliases(f["properties"]), f["properties"]["name"],
                                                  *f["properties"].get("alt_names", [])]})
    geoms = {f["properties"]["id"]: shape(f["geometry"]) for f in feats}
    provenance = {
        "reference_file": "shared/reference/camps_reference.geojson",
        "reference_sha256": _sha256(reference),
        "reference_generated": ref.get("metadata", {}).get("generated"),
        "built_by": "aois/build_catalogue.py",
    }
    written = []
    for f in feats:
        p = f["properties"]
        out_path = AOIS / f"{p['id']}.geojson"
        if out_path.exists():
            old = json.loads(out_path.read_text(encoding="utf-8"))["features"][0]
            if old["properties"].get("geometry_quality") not in (None, "approximate"):
                print(f"keep {out_path.name}: geometry_quality={old['properties']['geometry_quality']!r} "
                      "(hand-edited; not regenerated)", file=sys.stderr)
                continue
        aliases = []
        for a in _generated_aliases(p):
            if a != p["id"] and a not in aliases:
                aliases.append(a)
        props = {"id": p["id"], "name": p["name"], "aliases": aliases}
        shared = sorted({a for a in aliases + p.get("alt_names", []) if counts[_key(a)] > 1})
        if shared:
            props["shared_aliases"] = shared
        props.update({k: p[k] for k in FIRST if k in p and k not in props})
        props["caveats"] = _caveats(p, geoms[p["id"]], geoms)
        props.update({k: v for k, v in p.items() if k not in props})
        props["catalogue_provenance"] = provenance
        fc = {"type": "FeatureCollection",
              "features": [{"type": "Feature", "id": p["id"], "properties": props, "geometry": f["geometry"]}]}
        out_path.write_text(json.dumps(fc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        written.append(out_path)
    meta = {"source": provenance, "metadata": ref.get("metadata", {})}
    (AOIS / "reference_metadata.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n",
                                                   encoding="utf-8")
    return written


def build_samples() -> list[Path]:
    """One AOI per sample tile around its largest cluster of OSCD-labelled change."""
    import warnings

    written = []
    for city, title in SAMPLE_CITIES.items():
        folder = ROOT / "data" / "sample_tiles" / city
        b02 = sorted(glob.glob(str(folder / "imgs_1" / "*B02.tif")))[0]
        with rasterio.open(b02) as ds:
            transform, (rows, cols) = ds.transform, ds.shape
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(folder / "cm" / f"{city}-cm.tif") as ds:
                change = ds.read(1) == 2
        footprint = shape(json.loads((folder / f"{city}.geojson").read_text())["features"][0]["geometry"])
        # Largest cluster of change pixels, clusters merged across gaps of up to ~80 m (8 px dilation).
        lab, n = ndimage.label(ndimage.binary_dilation(change, iterations=8))
        sizes = ndimage.sum(change, lab, range(1, n + 1))
        k = int(np.argmax(sizes)) + 1
        rr, cc = np.nonzero((lab == k) & change)
        x0, y0 = rasterio.transform.xy(transform, rr.max() + 1, cc.min(), offset="ul")
        x1, y1 = rasterio.transform.xy(transform, rr.min(), cc.max() + 1, offset="ul")
        lon, lat = footprint.centroid.x, footprint.centroid.y
        utm = f"EPSG:{(32600 if lat >= 0 else 32700) + int((lon + 180) // 6) % 60 + 1}"
        fwd = Transformer.from_crs("EPSG:4326", utm, always_xy=True).transform
        back = Transformer.from_crs(utm, "EPSG:4326", always_xy=True).transform
        cluster = shp_transform(fwd, box(x0, y0, x1, y1))
        img = shp_transform(fwd, box(*rasterio.transform.array_bounds(rows, cols, transform)[::1]))
        inner = shp_transform(fwd, footprint).intersection(img).buffer(-50.0, join_style="mitre")
        bx0, by0, bx1, by1 = cluster.buffer(400.0, join_style="mitre").bounds
        poly = box(bx0, by0, bx1, by1).intersection(inner)
        geom = shapely.set_precision(shp_transform(back, poly), 1e-7)
        geom = shapely.normalize(geom)
        area_km2 = round(poly.area / 1e6, 3)
        dates = dict(line.split(": ") for line in (folder / "dates.txt").read_text().split("\n") if ": " in line)
        d1, d2 = (f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in (dates["date_1"], dates["date_2"]))
        props = {
            "id": f"sample-{city}", "name": title, "aliases": [city, f"sample {city}"],
            "kind": "sample", "camp_number": None, "province": None,
            "status": "not a camp", "status_confidence": None, "geometry_quality": "sample",
            "caveats": ["NOT A CAMP. A demonstration AOI on a sample tile of a French city, so the demo runs "
                        "AOI-driven like a real analysis."],
            "note": "Not a camp: demonstration area on a campwatch sample tile.",
            "geometry_method": "bbox_of_largest_change_cluster",
            "geometry_params": {
                "rule": "bounding box of the largest cluster of OSCD change pixels (label 2, clusters merged "
                        "by an 8 px dilation), grown by 400 m in UTM, clipped to the tile footprint less 50 m",
                "cluster_change_px": int(sizes[k - 1]), "utm_crs": utm, "buffer_m": 400.0,
            },
            "geometry_area_km2": area_km2,
            "expected_changes": [{
                "period": f"{d1} .. {d2}",
                "observation": f"The OSCD change label marks {int(sizes[k - 1])} changed 10 m pixels in the "
                               "cluster this AOI surrounds (urban construction or demolition).",
                "source": OSCD_SOURCE["title"], "url": OSCD_SOURCE["url"],
                "change_type": "labelled_change",
            }],
            "sources": [OSCD_SOURCE, {"title": "Copernicus Sentinel-2 L1C (ESA), via OSCD; modified Copernicus "
                                               "Sentinel data 2015-2017", "url": "https://sentinel.esa.int"}],
            "sample_tile": f"data/sample_tiles/{city}",
        }
        out = AOIS / "samples" / f"sample-{city}.geojson"
        out.parent.mkdir(exist_ok=True)
        fc = {"type": "FeatureCollection",
              "features": [{"type": "Feature", "id": props["id"], "properties": props, "geometry": mapping(geom)}]}
        out.write_text(json.dumps(fc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        written.append(out)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    ap.add_argument("--no-samples", action="store_true")
    args = ap.parse_args(argv)
    if not args.reference.is_file():
        print(f"error: reference {args.reference} not found; pass --reference", file=sys.stderr)
        return 2
    files = build_camps(args.reference)
    if not args.no_samples:
        files += build_samples()
    for f in files:
        print(f.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
