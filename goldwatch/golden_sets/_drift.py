"""The output-distribution check of a replay: :func:`goldwatch.detectors.paired_output_shift` as a Check.

A golden replay compares answers one by one; when they are outside tolerance, this says *how* the outputs moved:
which columns shifted, by how much in the output's own units, and whether the shift is larger than the effect
floor (a fraction of the output's scale) -- so a column that is nearly constant in the approved model and moves by
1e-9 is reported as negligible, not as drift. The replayed and golden answers are paired (same inputs): the paired
t-test and the two-sample KS test (asymptotic p-value) are both applied, see :mod:`goldwatch.detectors.paired`.
The gate's candidate-vs-baseline drift check is the same function on the same columns.

>>> rng = np.random.default_rng(0)
>>> ref = rng.normal(size=(200, 3))
>>> output_drift("golden:y:distribution", ref, ref.copy(), alpha=0.01).status
'pass'
>>> output_drift("golden:y:distribution", ref, ref + 1.0, alpha=0.01).status
'fail'
>>> output_drift("golden:y:distribution", ref, ref + 1e-9, alpha=0.01).summary[:46]
'no column drifted: 3 of 3 moved detectably (mi'
"""

from __future__ import annotations

import numpy as np

from goldwatch.checks import Check
from goldwatch.detectors.paired import DEFAULT_MIN_EFFECT, MAX_TESTED_COLUMNS, paired_output_shift

__all__ = ["MAX_TESTED_COLUMNS", "output_drift"]


def output_drift(name: str, reference: np.ndarray, current: np.ndarray, *, alpha: float,
                 min_effect: float = DEFAULT_MIN_EFFECT) -> Check:
    """One check: did any column of ``current`` (n, k) move away from ``reference``'s, beyond the effect floor?"""
    if not (np.all(np.isfinite(current)) and np.all(np.isfinite(reference))):
        return Check(name=name, status="skip", summary="non-finite outputs: see the nonfinite check")
    shift = paired_output_shift(reference, current, alpha=alpha, min_effect=min_effect)
    worst = int(np.argmax(shift.effect)) if shift.effect.size else 0
    return Check(
        name=name,
        status="fail" if shift.n_drifted else "pass",
        summary=shift.describe(),
        measured={
            "drifted": shift.n_drifted, "min_pvalue": shift.min_adjusted_pvalue,
            "max_effect": float(shift.effect.max()) if shift.effect.size else 0.0,
            "negligible": int(np.count_nonzero(shift.negligible)),
        },
        threshold={"alpha": alpha, "correction": "bonferroni", "columns": len(shift.columns),
                   "min_effect": min_effect, "effect_floor": shift.effect_floor, "output_scale": shift.scale},
        details={
            "method": "paired t-test and two-sample KS (asymptotic) per column, the smaller p doubled, Bonferroni "
                      "across columns; drift = significant and Wasserstein-1 shift > effect floor",
            "worst_column": int(shift.columns[worst]) if shift.columns.size else 0,
            "shifts": shift.shifts(shift.drifted),
            "negligible_shifts": shift.shifts(shift.negligible, limit=20),
        },
    )
