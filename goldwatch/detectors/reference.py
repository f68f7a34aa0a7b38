"""Fit-once reference summaries: sort and bin the reference once, test many current windows against it.

The sidecar checks live windows against one reference all day; re-sorting a million-row reference for every
window would dominate the cost. :class:`ReferenceSummary` keeps what the tests need -- the sorted columns, the
quantile bin edges and reference histograms, mean and standard deviation, feature names -- and saves it without
pickle: the arrays in an ``.npz`` (loaded with ``allow_pickle=False``) and the metadata in a ``.json`` file that
also records the ``.npz``'s SHA-256, so a mismatched or tampered pair is refused on load.

>>> import numpy as np, tempfile, pathlib
>>> rng = np.random.default_rng(0)
>>> summary = ReferenceSummary.fit(rng.normal(size=(2000, 3)), feature_names=["a", "b", "c"])
>>> window = rng.normal([0.0, 0.0, 0.3], size=(500, 3))
>>> summary.test(window).drifted_features.tolist()
[False, False, True]
>>> path = pathlib.Path(tempfile.mkdtemp()) / "reference"
>>> summary.save(path)
>>> ReferenceSummary.load(path).test(window, test="psi").feature_names
['a', 'b', 'c']
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from goldwatch._fs import atomic_write
from goldwatch.detectors._backend import is_dask
from goldwatch.detectors._validation import NanPolicy, as_samples, check_pair, feature_names_of
from goldwatch.detectors.distances import (
    DEFAULT_THRESHOLDS,
    hellinger_from_histograms,
    histograms,
    js_from_histograms,
    kl_from_histograms,
    psi_from_histograms,
)
from goldwatch.detectors.drift import detect_drift, finish_report
from goldwatch.detectors.ks import ks_pvalue, ks_statistic_sorted
from goldwatch.detectors.registry import get_detector
from goldwatch.detectors.results import DriftReport, TestResult
from goldwatch.errors import DataError

__all__ = ["FORMAT_VERSION", "ReferenceSummary"]

FORMAT_VERSION = 1
_BINNED = {
    "psi": psi_from_histograms,
    "js": js_from_histograms,
    "hellinger": hellinger_from_histograms,
    "kl": kl_from_histograms,
}


@dataclass(frozen=True)
class ReferenceSummary:
    """What the drift tests need from a reference, computed once.

    ``sorted_values``: (n, F) columns sorted ascending, non-finite values (dropped with ``nan_policy="omit"``)
    as NaN at the end of their column; ``n_finite``: finite count per feature; ``edges``: (bins - 1, F) interior
    quantile edges; ``histogram``: (F, bins) reference bin probabilities.
    """

    feature_names: list[str]
    sorted_values: np.ndarray
    n_finite: np.ndarray
    edges: np.ndarray
    histogram: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @classmethod
    def fit(
        cls,
        reference: Any,
        *,
        feature_names: list[str] | None = None,
        bins: int = 10,
        nan_policy: NanPolicy = "raise",
    ) -> ReferenceSummary:
        """Summarize ``reference`` (a dask array/dataframe is read chunk by chunk from the current client)."""
        if is_dask(reference):
            from goldwatch.detectors.distributed import fit_summary

            return fit_summary(cls, reference, feature_names=feature_names, bins=bins,
                               nan_policy=nan_policy)
        ref = as_samples(reference, name="reference")
        names = list(feature_names) if feature_names is not None else feature_names_of(reference, ref.shape[1])
        if len(names) != ref.shape[1]:
            raise DataError(f"expected {ref.shape[1]} names, got {len(names)}", where="feature_names")
        finite = np.isfinite(ref)
        if not finite.all():
            if nan_policy == "raise":
                raise DataError(
                    f"reference has {int((~finite).sum())} non-finite value(s) (NaN/inf)",
                    where="nan_policy='raise'",
                    hint="clean the reference, or pass nan_policy='omit'",
                )
            if nan_policy != "omit":
                raise DataError(f"expected 'raise' or 'omit', got {nan_policy!r}", where="nan_policy")
        n_finite = finite.sum(axis=0)
        if (n_finite == 0).any():
            raise DataError(
                f"feature(s) {np.flatnonzero(n_finite == 0)[:10].tolist()} have no finite value", where="reference"
            )
        sorted_values = np.sort(np.where(finite, ref, np.nan), axis=0)
        if bins < 2:
            raise DataError(f"expected at least 2 bins, got {bins}", where="bins")
        edges = np.nanquantile(sorted_values, np.linspace(0, 1, bins + 1)[1:-1], axis=0)
        hist = cls._histogram_of(sorted_values, edges, n_finite)
        return cls(
            feature_names=names,
            sorted_values=sorted_values,
            n_finite=n_finite,
            edges=edges,
            histogram=hist,
            mean=np.nanmean(sorted_values, axis=0),
            std=np.nanstd(sorted_values, axis=0),
        )

    @staticmethod
    def _histogram_of(values: np.ndarray, edges: np.ndarray, n_finite: np.ndarray) -> np.ndarray:
        # NaN compares False with every edge, so it lands in the last (open) bin; remove it from there
        counts = histograms(values, edges) * values.shape[0]
        counts[:, -1] -= values.shape[0] - n_finite
        return counts / n_finite[:, None]

    def test(
        self,
        current: Any,
        *,
        test: str = "ks",
        alpha: float = 0.05,
        correction: str = "bonferroni",
        min_effect: float | str | None = None,
        nan_policy: NanPolicy = "raise",
        threshold: float | None = None,
    ) -> DriftReport:
        """Drift of ``current`` against this reference; same options and result as :func:`detect_drift`.

        A dask ``current`` is counted on the current Dask client against this summary (its sorted values are the
        broadcast grid, its edges and histogram the bins): see :mod:`goldwatch.detectors.distributed`.
        """
        if is_dask(current):
            from goldwatch.detectors.distributed import summary_test

            return summary_test(self, current, test=test, alpha=alpha, correction=correction, min_effect=min_effect,
                                nan_policy=nan_policy, threshold=threshold)
        spec = get_detector(test)
        if spec.kind != "numeric":
            raise DataError(f"a reference summary holds numeric features; {test!r} is categorical", where="test",
                            hint="use detect_drift on the raw categorical data")
        cur = as_samples(current, name="current")
        check_pair(self.sorted_values, cur)
        bad_current = int(np.count_nonzero(~np.isfinite(cur)))
        if bad_current and nan_policy == "raise":
            raise DataError(f"current has {bad_current} non-finite value(s) (NaN/inf)",
                            where="nan_policy='raise'", hint="clean the data, or pass nan_policy='omit'")
        # a reference fitted with nan_policy="omit" keeps its NaN at the end of each column: drop them again
        clean = not bad_current and bool((self.n_finite == self.sorted_values.shape[0]).all())
        floor = spec.recommended_min_effect if min_effect == "auto" else min_effect
        if clean and (test == "ks" or test in _BINNED):
            from goldwatch.detectors.drift import _check_options

            _check_options(alpha, correction, min_effect)
            result = self._fast(test, cur, alpha=alpha, threshold=threshold)
            zeros = np.zeros(self.n_features, dtype=np.int64)
            return finish_report(result, alpha=alpha, correction=correction, min_effect=floor,  # type: ignore[arg-type]
                                 n_dropped_reference=zeros, n_dropped_current=zeros)
        report = detect_drift(self.sorted_values, cur, test=test, alpha=alpha, correction=correction,  # type: ignore[arg-type]
                              min_effect=min_effect, nan_policy="raise" if clean else "omit",  # type: ignore[arg-type]
                              threshold=threshold)
        import dataclasses

        return dataclasses.replace(report, feature_names=self.feature_names)

    def _fast(self, test: str, cur: np.ndarray, *, alpha: float, threshold: float | None) -> TestResult:
        """The reference-side work is already done: KS skips the reference sort, binned tests its histogram."""
        n1, n2 = self.sorted_values.shape[0], cur.shape[0]
        if test == "ks":
            pvalue, stat, _ = ks_pvalue(ks_statistic_sorted(self.sorted_values, cur), n1, n2)
            return TestResult(test="ks", statistic=stat, pvalue=pvalue, drifted=pvalue < alpha, threshold=alpha,
                              threshold_kind="pvalue", feature_names=self.feature_names)
        stat = _BINNED[test](self.histogram, histograms(cur, self.edges))
        limit = DEFAULT_THRESHOLDS[test] if threshold is None else threshold
        return TestResult(test=test, statistic=stat, pvalue=None, drifted=stat > limit, threshold=limit,
                          threshold_kind="statistic", feature_names=self.feature_names)

    # -- persistence ---------------------------------------------------------------------------------------

    @staticmethod
    def _paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
        base = Path(path)
        if base.suffix in (".npz", ".json"):
            base = base.with_suffix("")
        return base.with_suffix(".npz"), base.with_suffix(".json")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``PATH.npz`` (arrays) and ``PATH.json`` (metadata + the npz's SHA-256), each atomically."""
        import io

        npz_path, json_path = self._paths(path)
        buf = io.BytesIO()
        np.savez(buf, sorted_values=self.sorted_values, n_finite=self.n_finite, edges=self.edges,
                 histogram=self.histogram, mean=self.mean, std=self.std)
        data = buf.getvalue()
        meta = {
            "format": "goldwatch.reference_summary",
            "version": FORMAT_VERSION,
            "feature_names": self.feature_names,
            "n_samples": int(self.sorted_values.shape[0]),
            "bins": int(self.histogram.shape[1]),
            "npz_sha256": hashlib.sha256(data).hexdigest(),
        }
        atomic_write(npz_path, data, make_parents=True)
        atomic_write(json_path, json.dumps(meta, indent=2), make_parents=True)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReferenceSummary:
        npz_path, json_path = cls._paths(path)
        try:
            meta = json.loads(json_path.read_text(encoding="utf-8"))
            data = npz_path.read_bytes()
        except FileNotFoundError as exc:
            raise DataError("reference summary file not found", where=str(exc.filename),
                            hint="fit one with ReferenceSummary.fit(...).save(path)") from None
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read the reference summary ({exc})", where=str(json_path)) from None
        if not isinstance(meta, dict) or meta.get("format") != "goldwatch.reference_summary":
            raise DataError("not a goldwatch reference summary", where=str(json_path))
        if meta.get("version") != FORMAT_VERSION:
            raise DataError(f"unsupported version {meta.get('version')!r} (this goldwatch reads {FORMAT_VERSION})",
                            where=str(json_path), hint="refit the reference with this goldwatch")
        if hashlib.sha256(data).hexdigest() != meta.get("npz_sha256"):
            raise DataError("the .npz does not match its .json (SHA-256 differs)", where=str(npz_path),
                            hint="the pair was mixed up or modified; refit and save again")
        import io

        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in ("sorted_values", "n_finite", "edges", "histogram", "mean", "std")}
        except (KeyError, ValueError, OSError) as exc:
            raise DataError(f"malformed reference arrays ({exc})", where=str(npz_path)) from None
        names = [str(n) for n in meta.get("feature_names", [])]
        if len(names) != arrays["sorted_values"].shape[1]:
            raise DataError("feature names do not match the arrays", where=str(json_path))
        return cls(feature_names=names, **arrays)
