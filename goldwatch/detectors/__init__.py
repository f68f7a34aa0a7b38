"""goldwatch.detectors: vectorized statistical drift tests, batch and streaming, on numpy (CPU) or torch (CPU/CUDA).

Every batch test takes ``(n_samples, n_features)`` arrays (1-D = one feature; reference and current may differ
in length) and tests all features in one vectorized pass, with p-values that follow scipy's reference
implementations. Entry points:

* :func:`detect_drift` -- named test + multiple-testing correction + effect-size floor + NaN policy ->
  :class:`DriftReport` (dataset verdict, per-feature table, :class:`~goldwatch.checks.Check` objects).
* Tests: :func:`ks_2samp`, :func:`cramervonmises_2samp`, :func:`anderson_ksamp`, :func:`chi2_test`, distances
  :func:`wasserstein`, :func:`psi`, :func:`jensen_shannon`, :func:`hellinger`, :func:`kl_divergence`, and the
  multivariate :func:`mmd_test`.
* :func:`paired_output_shift` -- two models' outputs on the same inputs: paired t + KS per column, with an effect
  floor in the output's own units (the golden replay's and the gate's output drift).
* :class:`ReferenceSummary` -- fit once on the reference, save without pickle, test many windows.
* Streaming: :class:`PageHinkley`, :class:`CUSUM`, :class:`ADWIN`, vectorized across streams.
* :func:`get_detector` / :func:`available_detectors` -- detectors by name, for configuration files.

Dask arrays and dataframes are accepted by the batch tests, detect_drift and reference summaries: exact counts
on the current Dask client, p-values here (:mod:`goldwatch.detectors.distributed`).

Importing this package imports numpy only; scipy, pandas, torch and dask are imported when a test needs them.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> report = detect_drift(rng.normal(size=(500, 3)), rng.normal([0, 0, 1], size=(400, 3)))
>>> report.drifted, report.to_frame()["drifted"].tolist()
(True, [False, False, True])
"""

from goldwatch.detectors.anderson import anderson_ksamp
from goldwatch.detectors.categorical import CategoricalResult, chi2_test
from goldwatch.detectors.cvm import cramervonmises_2samp
from goldwatch.detectors.distances import hellinger, jensen_shannon, kl_divergence, psi, wasserstein
from goldwatch.detectors.drift import detect_drift
from goldwatch.detectors.ks import ks_2samp
from goldwatch.detectors.mmd import MMDResult, mmd_test
from goldwatch.detectors.multiple_testing import adjust_pvalues
from goldwatch.detectors.paired import OutputShift, paired_output_shift
from goldwatch.detectors.reference import ReferenceSummary
from goldwatch.detectors.registry import DetectorSpec, available_detectors, get_detector, register_detector
from goldwatch.detectors.results import DriftReport, TestResult
from goldwatch.detectors.streaming import ADWIN, CUSUM, PageHinkley

__all__ = [
    "ADWIN",
    "CUSUM",
    "CategoricalResult",
    "DetectorSpec",
    "DriftReport",
    "MMDResult",
    "OutputShift",
    "PageHinkley",
    "ReferenceSummary",
    "TestResult",
    "adjust_pvalues",
    "anderson_ksamp",
    "available_detectors",
    "chi2_test",
    "cramervonmises_2samp",
    "detect_drift",
    "get_detector",
    "hellinger",
    "jensen_shannon",
    "kl_divergence",
    "ks_2samp",
    "mmd_test",
    "paired_output_shift",
    "psi",
    "register_detector",
    "wasserstein",
]
