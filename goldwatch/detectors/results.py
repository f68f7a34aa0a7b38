"""Result types of the drift tests: per-feature :class:`TestResult` and the dataset-level :class:`DriftReport`.

Both are dataclasses of numpy arrays (one entry per feature), convertible to a pandas DataFrame and, for the
report, to :class:`~goldwatch.checks.Check` objects that the CI gate and the sidecar consume.

>>> import numpy as np
>>> r = TestResult(test="ks", statistic=np.array([0.1, 0.5]), pvalue=np.array([0.7, 1e-6]),
...                drifted=np.array([False, True]), threshold=0.05, threshold_kind="pvalue",
...                feature_names=["age", "income"])
>>> r.to_frame()
          test  statistic        pvalue  drifted
feature
age         ks        0.1  7.000000e-01    False
income      ks        0.5  1.000000e-06     True
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from goldwatch.checks import Check

if TYPE_CHECKING:  # pandas is a core dependency, but importing it costs ~0.3 s: only when a frame is asked for
    import pandas as pd

__all__ = ["DriftReport", "TestResult"]


@dataclasses.dataclass(frozen=True)
class TestResult:
    """Per-feature outcome of one two-sample test.

    ``threshold_kind`` says what ``threshold`` is compared with: ``"pvalue"`` (drifted where pvalue < threshold)
    or ``"statistic"`` (drifted where statistic > threshold, for distances that have no p-value).
    ``strategy``: empty in memory; for Dask inputs, how the exact counts were gathered (e.g. ``"dask:broadcast"``).
    """

    __test__ = False  # not a pytest test class, despite the name

    test: str
    statistic: np.ndarray
    pvalue: np.ndarray | None
    drifted: np.ndarray
    threshold: float
    threshold_kind: Literal["pvalue", "statistic"]
    feature_names: list[str] = dataclasses.field(default_factory=list)
    method: str = ""
    n_reference: np.ndarray | None = None
    n_current: np.ndarray | None = None
    strategy: str = ""

    def __post_init__(self) -> None:
        if not self.feature_names:
            object.__setattr__(self, "feature_names", [f"f{i}" for i in range(len(self.statistic))])

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        data: dict[str, Any] = {"test": self.test, "statistic": self.statistic}
        if self.pvalue is not None:
            data["pvalue"] = self.pvalue
        data["drifted"] = self.drifted
        return pd.DataFrame(data, index=pd.Index(self.feature_names, name="feature"))


@dataclasses.dataclass(frozen=True)
class DriftReport:
    """Dataset-level verdict over all features, after multiple-testing correction and the effect-size floor.

    A feature drifts when its corrected p-value is below ``alpha`` (tests with p-values) or its statistic is
    above the test's threshold (distances), *and* its statistic is at least ``min_effect`` (when set). The dataset
    drifts when any feature does. ``n_dropped_reference`` / ``n_dropped_current`` count the non-finite values
    dropped per feature under ``nan_policy="omit"``. ``strategy``: empty in memory, else how a Dask run gathered
    its exact counts (see :mod:`goldwatch.detectors.distributed`).
    """

    test: str
    alpha: float
    correction: str
    min_effect: float | None
    feature_names: list[str]
    statistic: np.ndarray
    pvalue: np.ndarray | None
    adjusted_pvalue: np.ndarray | None
    drifted_features: np.ndarray
    threshold: float
    threshold_kind: Literal["pvalue", "statistic"]
    n_dropped_reference: np.ndarray
    n_dropped_current: np.ndarray
    strategy: str = ""

    @property
    def drifted(self) -> bool:
        """Dataset-level verdict: True when at least one feature drifted."""
        return bool(np.any(self.drifted_features))

    @property
    def n_drifted(self) -> int:
        return int(np.count_nonzero(self.drifted_features))

    @property
    def features(self) -> TestResult:
        """Per-feature arrays as a :class:`TestResult` (p-values after correction are in ``adjusted_pvalue``)."""
        return TestResult(
            test=self.test,
            statistic=self.statistic,
            pvalue=self.pvalue,
            drifted=self.drifted_features,
            threshold=self.threshold,
            threshold_kind=self.threshold_kind,
            feature_names=self.feature_names,
            strategy=self.strategy,
        )

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        data: dict[str, Any] = {"statistic": self.statistic}
        if self.pvalue is not None:
            data["pvalue"] = self.pvalue
            data["adjusted_pvalue"] = self.adjusted_pvalue
        data["drifted"] = self.drifted_features
        data["n_dropped_reference"] = self.n_dropped_reference
        data["n_dropped_current"] = self.n_dropped_current
        return pd.DataFrame(data, index=pd.Index(self.feature_names, name="feature"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: the verdict, the rule, and one record per feature (NaN becomes None)."""
        features = []
        for i, name in enumerate(self.feature_names):
            row: dict[str, Any] = {"feature": name, "statistic": _num(self.statistic[i])}
            if self.pvalue is not None and self.adjusted_pvalue is not None:
                row["pvalue"] = _num(self.pvalue[i])
                row["adjusted_pvalue"] = _num(self.adjusted_pvalue[i])
            row["drifted"] = bool(self.drifted_features[i])
            row["n_dropped_reference"] = int(self.n_dropped_reference[i])
            row["n_dropped_current"] = int(self.n_dropped_current[i])
            features.append(row)
        out: dict[str, Any] = {
            "drifted": self.drifted,
            "n_drifted": self.n_drifted,
            "n_features": len(self.feature_names),
            "test": self.test,
            "rule": self._rule(),
            "alpha": self.alpha,
            "correction": self.correction,
            "min_effect": self.min_effect,
            "threshold": self.threshold,
            "threshold_kind": self.threshold_kind,
            "features": features,
        }
        if self.strategy:
            out["strategy"] = self.strategy
        return out

    def to_checks(self, prefix: str = "drift") -> list[Check]:
        """One check per feature (``{prefix}:{test}:{feature}``) plus a dataset-level one (``{prefix}:{test}``)."""
        checks = []
        rule = self._rule()
        for i, name in enumerate(self.feature_names):
            measured: dict[str, float | int | None] = {"statistic": _num(self.statistic[i])}
            if self.pvalue is not None and self.adjusted_pvalue is not None:
                measured["pvalue"] = _num(self.pvalue[i])
                measured["adjusted_pvalue"] = _num(self.adjusted_pvalue[i])
            if self.n_dropped_reference[i] or self.n_dropped_current[i]:
                measured["n_dropped_reference"] = int(self.n_dropped_reference[i])
                measured["n_dropped_current"] = int(self.n_dropped_current[i])
            drifted = bool(self.drifted_features[i])
            summary = f"{self.test} statistic {self.statistic[i]:.4g}"
            if self.adjusted_pvalue is not None:
                summary += f", adjusted p={self.adjusted_pvalue[i]:.3g}"
            summary += " -> drift" if drifted else " -> no drift"
            checks.append(
                Check(
                    name=f"{prefix}:{self.test}:{name}",
                    status="fail" if drifted else "pass",
                    summary=summary,
                    measured=measured,
                    threshold=self._threshold_dict(),
                )
            )
        summary = (
            f"{self.n_drifted} of {len(self.feature_names)} feature(s) drifted ({rule})"
            if self.drifted
            else f"no drift in {len(self.feature_names)} feature(s) ({rule})"
        )
        checks.append(
            Check(
                name=f"{prefix}:{self.test}",
                status="fail" if self.drifted else "pass",
                summary=summary,
                measured={"n_drifted": self.n_drifted, "n_features": len(self.feature_names)},
                threshold=self._threshold_dict(),
                details={"drifted_features": [n for n, d in zip(self.feature_names, self.drifted_features) if d]},
            )
        )
        return checks

    def _threshold_dict(self) -> dict[str, float | str | None]:
        out: dict[str, float | str | None] = {self.threshold_kind: self.threshold, "correction": self.correction}
        if self.min_effect is not None:
            out["min_effect"] = self.min_effect
        return out

    def _rule(self) -> str:
        if self.threshold_kind == "pvalue":
            rule = f"{self.correction} p < {self.alpha:g}"
        else:
            rule = f"statistic > {self.threshold:g}"
        if self.min_effect is not None:
            rule += f" and statistic >= {self.min_effect:g}"
        return rule


def _num(value: Any) -> float | None:
    v = float(value)
    return v if np.isfinite(v) else None
