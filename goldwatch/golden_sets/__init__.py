"""Golden sets: frozen inputs with the answers an approved model gave, calibrated tolerances, and replay.

* :mod:`.format` -- the on-disk format (:class:`GoldenSet`, :class:`Tolerance`), digest-checked on load
* :mod:`.build` -- :func:`build_golden_set`: run the model, store answers, calibrate tolerances from measured noise
* :mod:`.calibrate` -- how tolerances are derived (and explained in the manifest)
* :mod:`.compare` -- the per-output checks (errors, top-1/top-k, cosine, labels, NaN/Inf, distribution)
* :mod:`.replay` -- :func:`replay` and :class:`ReplayReport`, including cross-device (CPU vs CUDA) replay

Only numpy is imported here; model runtimes load their libraries when a model is loaded.
"""

from goldwatch.golden_sets.build import build_golden_set
from goldwatch.golden_sets.format import MANIFEST_NAME, SCHEMA_VERSION, GoldenSet, Tolerance
from goldwatch.golden_sets.replay import ReplayReport, check_compatible, replay

__all__ = [
    "MANIFEST_NAME",
    "SCHEMA_VERSION",
    "GoldenSet",
    "ReplayReport",
    "Tolerance",
    "build_golden_set",
    "check_compatible",
    "replay",
]
