"""Exact drift tests on Dask: workers return exact counts, the driver runs the in-memory p-value code.

A p-value needs only the exact statistic and the two sample sizes, and the statistics goldwatch tests with are
functions of counts. So every strategy here gathers exact integers on the cluster and finishes on the driver with
the same code as :mod:`goldwatch.detectors` -- the statistic and p-value equal scipy's and the in-memory ones,
bit for bit where the in-memory computation is exact. No sketch, no sampling, no approximate quantile ever
produces a p-value; a run either counts every chunk exactly once or raises
:class:`~goldwatch.errors.ClusterError`.

Strategies (:func:`plan_strategy` picks the cheapest that fits the workers' memory; ``strategy=`` forces one):

* **broadcast** -- the reference fits in a worker (the usual case: a fixed reference, unbounded current data);
  ks, psi, js, hellinger, kl, chi2. Each task counts a current chunk against the reference's sorted distinct
  values (or bin edges, or categories) where the chunk lives; the counts add up in a tree, no shuffle. The
  network carries the grid once per worker and about ``k`` integers per feature back per task.
* **feature-blocks** -- one feature's two samples fit in a worker; ks, cvm, anderson, wasserstein. Each task
  runs the in-memory test on all rows of a few features; the network carries every value once (a rechunk).
* **ranges** -- neither fits; ks, cvm. Each task merges one value range of both samples and returns exact
  integers relative to its range; the network carries every value once (a shuffle) and a few integers back.

The public functions take the same arguments as their in-memory namesakes (plus ``strategy``), and the in-memory
ones send dask inputs here, so ``goldwatch.detectors.ks_2samp(dask_ref, dask_cur)`` runs on the current
``distributed.Client`` (or dask's local scheduler without one) and returns the same :class:`TestResult`, with
``strategy`` saying how. See docs/distributed.md for the design across N hosts.

>>> import numpy as np, dask.array as da
>>> from scipy import stats
>>> rng = np.random.default_rng(0)
>>> ref, cur = rng.normal(size=(300, 2)), rng.normal([0.0, 0.3], size=(1000, 2))
>>> res = ks_2samp(da.from_array(ref, chunks=100), da.from_array(cur, chunks=(250, 2)))
>>> res.strategy, bool(res.pvalue[1] == stats.ks_2samp(ref[:, 1], cur[:, 1]).pvalue)
('dask:broadcast', True)
"""

from goldwatch.detectors.distributed._api import (
    STRATEGIES,
    Plan,
    chi2_test,
    cramervonmises_2samp,
    detect_drift,
    fit_summary,
    histogram_distance,
    ks_2samp,
    plan_strategy,
    summary_test,
    wasserstein,
)

__all__ = [
    "STRATEGIES",
    "Plan",
    "chi2_test",
    "cramervonmises_2samp",
    "detect_drift",
    "fit_summary",
    "histogram_distance",
    "ks_2samp",
    "plan_strategy",
    "summary_test",
    "wasserstein",
]
