"""Detectors by name, so configuration files and the CLI can say ``test = "psi"``.

Each entry wraps a vectorized test with one calling convention, ``run(reference, current, alpha=..., threshold=...)
-> TestResult``, and says what it needs (numeric or categorical data), whether it yields p-values, its default
threshold for distances, and a recommended effect-size floor for very large samples (``min_effect="auto"``).

>>> sorted(available_detectors())
['anderson', 'chi2', 'cvm', 'hellinger', 'js', 'kl', 'ks', 'psi', 'wasserstein']
>>> get_detector("psi").default_threshold
0.2
>>> get_detector("kolmogorov")
Traceback (most recent call last):
...
goldwatch.errors.ConfigError: test: unknown detector 'kolmogorov' (fix: use one of: anderson, chi2, cvm, ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from goldwatch.detectors.results import TestResult
from goldwatch.errors import ConfigError

__all__ = ["DetectorSpec", "available_detectors", "get_detector", "register_detector"]

RunFn = Callable[..., TestResult]


@dataclass(frozen=True)
class DetectorSpec:
    """A named detector.

    ``recommended_min_effect``: with millions of rows every p-value is tiny, so ``min_effect="auto"`` also asks
    the statistic to exceed this floor: KS D >= 0.1 (ECDFs 10 points apart), CvM T >= 0.5, Anderson A2 >= 5,
    chi2 (per 1,000 observations) is not scale-free, so none.
    """

    name: str
    run: RunFn
    kind: Literal["numeric", "categorical"]
    has_pvalue: bool
    default_threshold: float | None
    recommended_min_effect: float | None
    description: str


_REGISTRY: dict[str, DetectorSpec] = {}


def register_detector(spec: DetectorSpec) -> None:
    """Add (or replace) a detector; plugins call this at import time."""
    _REGISTRY[spec.name] = spec


def available_detectors() -> dict[str, str]:
    """Name -> one-line description."""
    return {name: spec.description for name, spec in sorted(_REGISTRY.items())}


def get_detector(name: str) -> DetectorSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown detector {name!r}", where="test", hint="use one of: " + ", ".join(sorted(_REGISTRY))
        ) from None


def _ks(reference: Any, current: Any, *, alpha: float, threshold: float | None = None) -> TestResult:
    from goldwatch.detectors.ks import ks_2samp

    return ks_2samp(reference, current, alpha=alpha)


def _cvm(reference: Any, current: Any, *, alpha: float, threshold: float | None = None) -> TestResult:
    from goldwatch.detectors.cvm import cramervonmises_2samp

    return cramervonmises_2samp(reference, current, alpha=alpha)


def _anderson(reference: Any, current: Any, *, alpha: float, threshold: float | None = None) -> TestResult:
    from goldwatch.detectors.anderson import anderson_ksamp

    return anderson_ksamp(reference, current, alpha=alpha)


def _chi2(reference: Any, current: Any, *, alpha: float, threshold: float | None = None) -> TestResult:
    from goldwatch.detectors.categorical import chi2_test

    return chi2_test(reference, current, alpha=alpha).result


def _distance(name: str) -> RunFn:
    def run(reference: Any, current: Any, *, alpha: float, threshold: float | None = None) -> TestResult:
        from goldwatch.detectors import distances

        limit = distances.DEFAULT_THRESHOLDS[name] if threshold is None else threshold
        if name == "wasserstein":
            return distances.wasserstein(reference, current, normed=True, threshold=limit)
        func = {
            "psi": distances.psi,
            "js": distances.jensen_shannon,
            "hellinger": distances.hellinger,
            "kl": distances.kl_divergence,
        }[name]
        return func(reference, current, threshold=limit)

    return run


for _spec in (
    DetectorSpec("ks", _ks, "numeric", True, None, 0.1, "two-sample Kolmogorov-Smirnov (scipy-exact p-values)"),
    DetectorSpec("cvm", _cvm, "numeric", True, None, 0.5, "two-sample Cramér-von Mises"),
    DetectorSpec("anderson", _anderson, "numeric", True, None, 5.0, "k-sample Anderson-Darling (midrank)"),
    DetectorSpec("chi2", _chi2, "categorical", True, None, None, "chi-squared on category counts (unseen kept)"),
    DetectorSpec("wasserstein", _distance("wasserstein"), "numeric", False, 0.1, None,
                 "Wasserstein-1 in reference standard deviations"),
    DetectorSpec("psi", _distance("psi"), "numeric", False, 0.2, None, "population stability index, 10 bins"),
    DetectorSpec("js", _distance("js"), "numeric", False, 0.1, None, "Jensen-Shannon distance, 10 bins"),
    DetectorSpec("hellinger", _distance("hellinger"), "numeric", False, 0.1, None, "Hellinger distance, 10 bins"),
    DetectorSpec("kl", _distance("kl"), "numeric", False, 0.1, None, "KL(current || reference), 10 bins"),
):
    register_detector(_spec)
