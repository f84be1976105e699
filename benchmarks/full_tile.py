"""Full Sentinel-2 tile benchmark: campwatch's streaming compare against decode-only, a naive
whole-array CVA and Orfeo ToolBox's MultivariateAlterationDetector (GitHub issue 9).

Not part of the test suite; it prints figures and asserts nothing.

1. Builds a before/after pair of ``side`` × ``side`` pixels (default 10980, a full tile) by
   tiling real 256 × 256 crops of the 10 m bands B02, B03, B04, B08 of the
   ``../shared/data/oscd-unlabelled`` cities (before from ``imgs_1``, after from ``imgs_2``
   at the same place; crops rotated/flipped so neighbours differ).  uint16, tiled 512 × 512,
   DEFLATE (predictor 2), band-interleaved, EPSG:32652 at 10 m.  Also the 1/4 and 1/2 sides.
2. Runs, one after another, each in its own process (peak RSS from ``getrusage(RUSAGE_CHILDREN)``
   of a fresh wrapper process):
   ``decode`` (read every block of both files, 2 threads, nothing else);
   ``campwatch`` (``campwatch compare BEFORE AFTER -o OUT --stream``, otherwise the defaults: clouds
   masked, co-registration estimated);
   ``naive-cva`` (whole-array float64 numpy: per-band standardisation, distance, Otsu, mask file);
   ``otb`` (``otbcli_MultivariateAlterationDetector``, when installed).
3. Prints a table of wall seconds, peak RSS and ratio to the decode time, and how time and
   memory grow with the side (1/4, 1/2, 1).

Usage::

    python benchmarks/full_tile.py [--workdir DIR] [--sides 2745,5490,10980] [--skip-naive] [--skip-otb]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CAMPWATCH_SHARED_DATA", ROOT.parent / "shared" / "data"))
BANDS = ("B02", "B03", "B04", "B08")
CROP = 256
BLOCK = 512
FULL = 10980


# --------------------------------------------------------------------------------------
# building the pair
# --------------------------------------------------------------------------------------
def _crops() -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(before, after, label) 4-band uint16 crops of CROP x CROP from every city large enough."""
    import rasterio

    root = SHARED / "oscd-unlabelled"
    out = []
    for city in sorted(p for p in root.iterdir() if (p / "imgs_1").is_dir()):
        stacks = []
        for d in ("imgs_1", "imgs_2"):
            arrs = []
            for b in BANDS:
                f = next((city / d).glob(f"*_{b}.tif"))
                with rasterio.open(f) as ds:
                    arrs.append(ds.read(1))
            h = min(a.shape[0] for a in arrs)
            w = min(a.shape[1] for a in arrs)
            stacks.append(np.stack([a[:h, :w] for a in arrs]))
        h = min(stacks[0].shape[1], stacks[1].shape[1])
        w = min(stacks[0].shape[2], stacks[1].shape[2])
        for r in range(0, h - CROP + 1, CROP):
            for c in range(0, w - CROP + 1, CROP):
                b = stacks[0][:, r:r + CROP, c:c + CROP]
                a = stacks[1][:, r:r + CROP, c:c + CROP]
                if (b > 0).all() and (a > 0).all():
                    out.append((b, a, f"{city.name}[{r}:{c}]"))
    if not out:
        raise SystemExit(f"no crops found under {root}")
    return out


def build_pair(side: int, folder: Path) -> tuple[Path, Path]:
    """Write before.tif / after.tif of side x side pixels into ``folder`` (reused when present)."""
    import rasterio
    from affine import Affine

    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "before.tif", folder / "after.tif"
    if all(p.exists() for p in paths):
        return paths
    crops = _crops()
    profile = {"driver": "GTiff", "height": side, "width": side, "count": 4, "dtype": "uint16",
               "crs": "EPSG:32652", "transform": Affine(10, 0, 300000, 0, -10, 4500000), "nodata": 0,
               "tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "deflate", "predictor": 2,
               "interleave": "band", "bigtiff": "if_safer"}
    rows = -(-side // CROP)
    for k, (path, date) in enumerate(zip(paths, ("2019-06-01", "2021-06-01"), strict=True)):
        tmp = path.with_suffix(".part.tif")
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.update_tags(ACQUISITION_DATE=date, SENSOR="Sentinel-2 L1C mosaic of OSCD crops (benchmark)")
            for i, b in enumerate(BANDS):
                dst.set_band_description(i + 1, b)
            for br in range(0, rows, BLOCK // CROP):
                nr = min(BLOCK // CROP, rows - br)
                strip = np.empty((4, nr * CROP, side + CROP), dtype=np.uint16)
                for i in range(nr):
                    for j in range(-(-side // CROP)):
                        idx = ((br + i) * 131 + j * 17) % len(crops)
                        img = crops[idx][k]
                        rot = ((br + i) + 3 * j) % 4
                        img = np.rot90(img, rot, axes=(1, 2))
                        if (br + i + j) % 2:
                            img = img[:, :, ::-1]
                        strip[:, i * CROP:(i + 1) * CROP, j * CROP:(j + 1) * CROP] = img
                r0 = br * CROP
                h = min(nr * CROP, side - r0)
                dst.write(strip[:, :h, :side], window=rasterio.windows.Window(0, r0, side, h))
        os.replace(tmp, path)
    return paths


# --------------------------------------------------------------------------------------
# steps (each run in its own process)
# --------------------------------------------------------------------------------------
def step_decode(before: str, after: str) -> None:
    """Decode every block of both files with 2 threads (one dataset handle per thread)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import rasterio

    local = threading.local()

    def read(job: tuple[str, rasterio.windows.Window]) -> int:
        path, win = job
        handles = getattr(local, "h", None)
        if handles is None:
            handles = local.h = {}
        if path not in handles:
            handles[path] = rasterio.open(path)
        return int(handles[path].read(window=win).shape[0])

    jobs = []
    for p in (before, after):
        with rasterio.open(p) as ds:
            jobs += [(p, w) for _, w in ds.block_windows(1)]
    with ThreadPoolExecutor(2) as ex:
        n = sum(ex.map(read, jobs))
    print(f"decoded {len(jobs)} blocks ({n} band reads)")


def step_naive(before: str, after: str, out: str) -> None:
    """The naive whole-array CVA: everything as float64 in memory."""
    import rasterio

    with rasterio.open(before) as ds:
        b = ds.read().astype(np.float64)
        profile = ds.profile
    with rasterio.open(after) as ds:
        a = ds.read().astype(np.float64)
    valid = (b > 0).all(0) & (a > 0).all(0)
    zb = (b - b[:, valid].mean(1)[:, None, None]) / b[:, valid].std(1)[:, None, None]
    za = (a - a[:, valid].mean(1)[:, None, None]) / a[:, valid].std(1)[:, None, None]
    d = np.sqrt(((za - zb) ** 2).sum(0))
    hist, edges = np.histogram(d[valid], bins=1024)
    p = hist / hist.sum()
    c = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * c)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (m0[-1] * w0 - m0) ** 2 / (w0 * (1 - w0))
    t = edges[int(np.nanargmax(between[:-1])) + 1]
    mask = np.where(valid, (d > t).astype(np.uint8), 255).astype(np.uint8)
    profile.update(count=1, dtype="uint8", nodata=255, predictor=1)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(mask, 1)
    print(f"naive CVA threshold {t:.3f}, changed {float((mask == 1).mean()):.4%}")


def measure(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``cmd`` in a fresh wrapper process; wall seconds and peak RSS (MB) of the command."""
    wrapper = ("import json,resource,subprocess,sys,time\n"
               "t=time.perf_counter();r=subprocess.run(sys.argv[1:]);w=time.perf_counter()-t\n"
               "m=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024\n"
               "print('@@'+json.dumps({'wall_s':w,'peak_rss_mb':m,'rc':r.returncode}))")
    res = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, env=env)
    line = [x for x in res.stdout.splitlines() if x.startswith("@@")]
    if not line:
        raise RuntimeError(f"{cmd[:3]} failed: {res.stderr[-2000:]}")
    out = json.loads(line[-1][2:])
    if out["rc"] != 0:
        sys.stderr.write(res.stdout[-3000:] + res.stderr[-3000:])
        out["wall_s"] = float("nan")
    return out


def _available_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1e6
    except OSError:
        pass
    return float("inf")


def run_side(side: int, work: Path, *, naive: bool, otb: bool, repeat: int) -> list[dict[str, object]]:
    folder = work / f"pair_{side}"
    t0 = time.perf_counter()
    before, after = build_pair(side, folder)
    print(f"# pair {side} x {side}: {before} ({before.stat().st_size / 1e6:.0f} MB), "
          f"{after} ({after.stat().st_size / 1e6:.0f} MB), built/reused in {time.perf_counter() - t0:.0f} s",
          flush=True)
    me = [sys.executable, str(Path(__file__).resolve())]
    campwatch = shutil.which("campwatch") or str(Path(sys.executable).with_name("campwatch"))
    steps: list[tuple[str, list[str]]] = [
        ("decode", [*me, "_decode", str(before), str(after)]),
        ("campwatch", [campwatch, "compare", str(before), str(after), "-o", str(folder / "out"), "--overwrite",
                       "--stream"]),
    ]
    # the naive step holds both dates and ~4 temporaries as float64 (22.9 GB at 10980 px): run it
    # only when that leaves room for whatever else shares the machine
    naive_gb = side * side * len(BANDS) * 8 * 5.5 / 1e9
    if naive and naive_gb > 0.6 * _available_gb():
        print(f"  naive-cva: needs about {naive_gb:.0f} GB, {_available_gb():.0f} GB available; skipped")
    elif naive:
        steps.append(("naive-cva", [*me, "_naive", str(before), str(after), str(folder / "naive_mask.tif")]))
    otb_exe = shutil.which("otbcli_MultivariateAlterationDetector")
    if otb and otb_exe:
        steps.append(("otb-mad", [otb_exe, "-in1", str(before), "-in2", str(after), "-out",
                                  str(folder / "otb_mad.tif"), "-ram", "256"]))
    rows = []
    for rep in range(repeat):
        for name, cmd in steps:
            r = measure(cmd)
            rows.append({"side": side, "step": name, "run": rep + 1, **r})
            print(f"  {name:<10} run {rep + 1}: {r['wall_s']:7.2f} s  {r['peak_rss_mb']:7.0f} MB", flush=True)
    if otb and not otb_exe:
        print("  otb-mad: otbcli_MultivariateAlterationDetector not installed (apt-get install otb-bin); skipped")
    return rows


def table(rows: list[dict[str, object]]) -> None:
    sides = sorted({int(r["side"]) for r in rows})  # type: ignore[call-overload]
    print()
    print(f"{'side':>6} {'step':<10} {'run':>3} {'wall s':>8} {'peak RSS MB':>12} {'x decode':>9}")
    for side in sides:
        sub = [r for r in rows if r["side"] == side]
        for r in sub:
            dec = next(x["wall_s"] for x in sub if x["step"] == "decode" and x["run"] == r["run"])
            print(f"{side:>6} {r['step']:<10} {r['run']:>3} {r['wall_s']:>8.2f} {r['peak_rss_mb']:>12.0f} "
                  f"{r['wall_s'] / dec:>9.2f}")  # type: ignore[operator]
    if len(sides) > 1:
        print("\nscaling (first run; pixels relative to the smallest side):")
        base = sides[0]
        steps = list(dict.fromkeys(str(r["step"]) for r in rows))
        for step in steps:
            line = []
            for side in sides:
                r = next((x for x in rows if x["side"] == side and x["step"] == step and x["run"] == 1), None)
                if r:
                    line.append(f"{(side / base) ** 2:5.1f}x px: {r['wall_s']:6.2f} s {r['peak_rss_mb']:6.0f} MB")
            print(f"  {step:<10} " + " | ".join(line))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_decode":
        return step_decode(sys.argv[2], sys.argv[3])
    if len(sys.argv) > 1 and sys.argv[1] == "_naive":
        return step_naive(sys.argv[2], sys.argv[3], sys.argv[4])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "campwatch-full-tile"))
    ap.add_argument("--sides", default=f"{FULL // 4},{FULL // 2},{FULL}")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each step per side")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--skip-otb", action="store_true")
    args = ap.parse_args()
    work = Path(args.workdir)
    rows = []
    for side in (int(s) for s in args.sides.split(",")):
        rows += run_side(side, work, naive=not args.skip_naive, otb=not args.skip_otb, repeat=args.repeat)
    table(rows)
    out = work / "results.json"
    out.write_text(json.dumps(rows, indent=1))
    print(f"\nrows written to {out}")


if __name__ == "__main__":
    main()
