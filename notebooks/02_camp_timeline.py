# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A timeline with `track`, and how to read its caveats
#
# `campwatch track` measures the **built footprint of one AOI at every date** it is given, and the
# **growth between consecutive usable dates**. This notebook runs it on the **Bercy sample tile**
# (Paris; real Sentinel-2 L1C of 2016-11-30 and 2017-08-29) inside the demonstration AOI `sample-bercy`,
# and reads everything the timeline says besides the headline number:
#
# - which dates were used or **skipped, and why** (clouds, too little valid data);
# - the **cloud fraction** masked inside the AOI at each date;
# - the footprint's **outline uncertainty**, and whether a net change is **significant**;
# - the **pixel size**, the AOI's **geometry quality**, and the limits stated in every output.
#
# The second Bercy date is partly cloudy (about 15 % of the AOI), which makes it a real example of
# the cloud handling. `sample-bercy` is **not a camp**. Every number is computed here from
# `data/sample_tiles/`.

# %%
import os
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import HTML, display

import campwatch as cw
from campwatch import plot

# run from the repository root, wherever the notebook was opened
while not (Path.cwd() / "data" / "sample_tiles").is_dir() and Path.cwd() != Path.cwd().parent:
    os.chdir("..")

SCENES = ["data/sample_tiles/bercy/imgs_2", "data/sample_tiles/bercy/imgs_1"]  # any order: sorted by date

# %% [markdown]
# ## Run the timeline
# Dates come from each scene (here `dates.txt`; a scene without one is given as `PATH@YYYY-MM-DD`).
# Clouds are masked by the spectral test at every date; a date is skipped when more than half of
# the AOI is cloud or invalid (the defaults `max_cloud_fraction=0.5`, `min_valid_fraction=0.5`).

# %%
aoi = cw.resolve_aoi("sample-bercy")
timeline = cw.track(SCENES, aoi=aoi)
display(HTML(plot.timeline_html(timeline)))

# %% [markdown]
# One row per date: `status` and `reason` say what happened to it; `cloud_fraction` is the share of the
# AOI masked as cloud; `footprint_m2` is the built footprint with `footprint_uncertainty_m2`, the area
# of a half-pixel band around every object outline (where a 10 m pixel cannot say built or not).

# %%
rows = pd.DataFrame(timeline.rows()).set_index("date")
rows[["status", "reason", "cloud_fraction", "valid_fraction", "footprint_m2", "footprint_uncertainty_m2",
      "n_objects", "net_m2", "net_uncertainty_m2", "significance"]]

# %%
plot.plot_timeline(timeline)
plt.show()

# %% [markdown]
# ## Where the clouds were, and what was compared
# The cloud mask of each date, inside the AOI (yellow). Cloud pixels are not observed: the growth
# accounting only uses pixels observed at **both** dates, so its `observed` share is below 100 %.

# %%
scenes = [cw.read_scene(p, aoi=aoi.geometry) for p in sorted(SCENES)]
scenes = [scenes[0], cw.read_scene(sorted(SCENES)[1], grid=scenes[0].grid)]
lim = plot.stretch_limits(*scenes)
fig, axs = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
for ax, sc in zip(axs, scenes, strict=True):
    masked = cw.mask_clouds(sc)
    plot.show_scene(sc, ax=ax, limits=lim, mask=sc.valid & ~masked.valid,
                    title=f"{sc.label}: cloud mask in yellow ({masked.meta['cloud_fraction']:.1%} of the window)")
    plot.plot_aoi(aoi, grid=sc.grid, ax=ax, colour="magenta")
plt.show()

# %% [markdown]
# ## The growth between the two dates
# Each pair of consecutive usable dates gives a `GrowthResult`: growth groups classed new, demolished,
# expanded, shrunk or unchanged, and a net change with its uncertainty.

# %%
pair = timeline.pairs[0]
display(HTML(plot.growth_html(pair)))
ax = plot.show_scene(scenes[1], title=f"growth groups {pair.info['date_before']} → {pair.info['date_after']}")
plot.plot_polygons(pair.polygons, ax=ax, grid=scenes[1].grid, column="class")
plot.plot_aoi(aoi, grid=scenes[1].grid, ax=ax)
plt.show()

# %% [markdown]
# ## Reading the caveats
# Everything needed to judge the numbers is in the timeline itself; none of it is optional reading.

# %%
s = pair.summary()
d = timeline.to_dict()
print(f"AOI {timeline.aoi_id}: geometry quality '{timeline.geometry_quality}'")
for caveat in aoi.caveats:
    print("  AOI caveat:", caveat)
print(f"net change {s['net_m2']:+,.0f} ± {s['net_uncertainty_m2']:,.0f} m² -> {s['significance']} "
      f"({s['significance_reason']})")
print("significance rule:", d["significance_rule"])
print(f"observed at both dates: {pair.info['observed_fraction_of_aoi']:.1%} of the AOI; cloud fraction before "
      f"{s['cloud_fraction_before']:.1%}, after {s['cloud_fraction_after']:.1%}")
first = timeline.used[0]
print(f"{first.date} footprint: {first.footprint['footprint_m2']:,.0f} m² over every pixel valid that day, "
      f"{s['footprint_before_m2']:,.0f} m² over the pixels observed at both dates (the growth accounting)")
print(f"pixel size {s['pixel_size_m']:.1f} m; smallest object kept {s['min_object_m2']:.0f} m²")
print("limits:", d["limits"])

# %% [markdown]
# How to read them:
#
# - **Significance first.** A net change is only reported as growth (or loss) when it is larger than
#   its uncertainty; `not-significant` means the two footprints cannot be told apart at this pixel size,
#   however large the percentage looks.
# - **Cloud fraction and observed share.** Pixels under cloud at either date are left out of the
#   accounting, so a footprint from a partly cloudy date covers less ground; compare footprints of
#   dates with similar observed shares, or read the growth figure (which uses only pixels seen twice).
# - **Geometry quality.** `sample` here; for a camp, `approximate` means the AOI was drawn from
#   published descriptions and may miss or include ground.
# - **Pixel size.** At 10 m, objects smaller than two pixels are dropped, and a hut of about 7 m
#   is not resolved at all.
#
# ## Skipping a date
# A stricter cloud limit skips the partly cloudy date instead of masking it. The skipped date stays in
# the timeline with its reason, and with one usable date left no growth can be measured: campwatch
# says so with a `LowValidDataWarning` rather than reporting a number.

# %%
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", cw.LowValidDataWarning)
    strict = cw.track(SCENES, aoi=aoi, max_cloud_fraction=0.10)
for row in strict.rows():
    print(f"{row['date']}: {row['status']:8s} {row['reason']}")
print(f"{len(strict.pairs)} growth pair(s)")
for w in caught:
    print(f"{w.category.__name__}: {w.message}")

# %% [markdown]
# ## The same from the command line
# ```sh
# campwatch track data/sample_tiles/bercy/imgs_1 data/sample_tiles/bercy/imgs_2 --aoi sample-bercy -o out/bercy-track
# campwatch track data/sample_tiles/bercy/imgs_1 data/sample_tiles/bercy/imgs_2 --aoi sample-bercy --max-cloud 0.1 -o out/bercy-strict
# ```
# It writes `timeline.csv` and `timeline.json` (the rows and caveats above), `footprint.png` (the chart)
# and, for each pair, `growth_<date1>_<date2>.gpkg` (layers `structures`, `objects_before`, `objects_after`)
# and `.geojson` (the growth groups).
