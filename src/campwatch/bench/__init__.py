"""Evaluation and benchmarks: scores against reference labels, kept out of the pipeline stages.

- :mod:`campwatch.bench.metrics` (pure): confusion counts and the metrics built on them
  (precision, recall, F1, IoU, kappa, overall accuracy), behind ``campwatch evaluate``.
- :mod:`campwatch.bench.oscd`: ``compare`` on each labelled OSCD city, scored
  (``campwatch bench oscd``).
- :mod:`campwatch.bench.vhr`: VHR mode and the naive baseline on LEVIR-CD and xBD
  (``campwatch bench vhr``).

A tool package: ``oscd`` and ``vhr`` run the stages and read named files, and no stage
imports them; import them by their module name.  ``metrics`` is pure (numpy and
:mod:`campwatch.errors`), so the view may use it too, and only its names are re-exported
here, so that ``import campwatch`` does not pull in ``compare`` or the VHR readers.
"""

from campwatch.bench.metrics import Confusion, confusion, labels_to_bool, require_change_mask

__all__ = ["Confusion", "confusion", "labels_to_bool", "require_change_mask"]
