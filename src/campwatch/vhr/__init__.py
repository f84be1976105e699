"""VHR mode: buildings as the unit on sub-metre RGB(N) imagery, a package of its stages.

Pure module: scenes and arrays in, arrays, GeoDataFrames and records out; no file is
opened here.

At about half a metre a house covers a few hundred pixels, so campwatch counts
buildings.  Everything here is classical image processing, except one pretrained network
used at coarse pixels (step 6); nothing is trained on the scene and no label is used:

1. **Building evidence per date** (:func:`building_index`, :func:`building_objects`).
   A roof is grey (low chromatic saturation) or at least not green, not in shadow, and
   compact.  Roads are grey too: they are removed as long, narrow structures (they
   survive an opening with a 30 m line but not with a 12 m disc).  A building casts a
   shadow, so an object must touch dark pixels along part of its rim.
2. **Radiometric normalisation** (:func:`normalise_to`): the second date's bands are
   fitted linearly to the first's by a reduced-major-axis fit on the pixels IR-MAD calls
   invariant (Canty's radcal, shared with the 10 m path), so a different sensor or colour
   balance does not read as change, and a weak correlation cannot shrink the gain.
3. **Co-registration** with :func:`campwatch.coregister.coregister_local` (local shifts
   over a grid of windows, a translation or affine model fitted by RANSAC), then a **shift-tolerant difference** (:func:`tolerant_difference`)
   that forgives residual shifts and building lean of up to ``tolerance_m``.
4. **Growth classes** per building (:func:`vhr_change`): new, demolished, expanded,
   shrunk and unchanged, as polygons with geodesic areas and counts.  A change whose
   grey levels still correlate with the other date's (:func:`structure_similarity`:
   same outline, ridge and shadow, whatever the colour) is dropped.
5. **Rubble test** (:func:`debris_objects`): roof-like segments of any roof colour on
   the first date that turned into bright, finely broken texture are also demolished
   (the grey-roof detector of step 1 misses most brown and red roofs), and so are
   small compact objects (sheds) whose outline and cast shadow are gone.  Each such
   segment is kept only if its mean deep change (step 6's network) is above the scene's
   own Otsu cut of it (:func:`deep_confirmed`), as the 10 m default confirms its regions.

6. **Deep features at coarse pixels** (:func:`campwatch.vhr.deep.deep_change`): above 1 m
   a house is a few pixels and the building logic misses most change, so the mask also holds
   pixel change where the colour score and the change of EfficientNet-lite0's ImageNet
   features (DCVA), each over the scene's own Otsu cut, average above 1.

Parameters are in metres and scaled by the grid's pixel size, so the same defaults
work at 0.3 m and at 1 m.  Limits are listed in ``docs/vhr.md``.
"""

from __future__ import annotations

from campwatch.vhr.buildings import building_index, building_mask, building_objects, road_mask, vegetation_index
from campwatch.vhr.change import naive_cva, smoothed_grey, structure_similarity, tolerant_difference
from campwatch.vhr.common import GROWTH_CLASSES
from campwatch.vhr.growth import COARSE_VHR_M, VHRChangeResult, VHRLowConfidenceWarning, vhr_change
from campwatch.vhr.normalise import normalise_to, rgb_stack
from campwatch.vhr.rubble import debris_objects, deep_confirmed

__all__ = [
    "COARSE_VHR_M",
    "GROWTH_CLASSES",
    "VHRChangeResult",
    "VHRLowConfidenceWarning",
    "building_index",
    "building_mask",
    "building_objects",
    "debris_objects",
    "deep_confirmed",
    "naive_cva",
    "normalise_to",
    "rgb_stack",
    "road_mask",
    "smoothed_grey",
    "structure_similarity",
    "tolerant_difference",
    "vegetation_index",
    "vhr_change",
]
