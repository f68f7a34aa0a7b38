"""Drift tests on a real Dask cluster (a LocalCluster of two worker processes on 127.0.0.1, one per module).

Exactness: statistics and p-values equal scipy's and the in-memory detectors' bit for bit, for random chunkings,
ties, NaN policy and categorical columns, under every strategy. Out of core: current data several times a
worker's memory limit, generated lazily on the workers. Failures: an unreachable scheduler, a worker killed in
the middle of a computation (exact result), a chunk that keeps killing workers (a clear error, no partial result).
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import goldwatch.detectors as gd
from goldwatch.detectors import distributed as gdd
from goldwatch.errors import ClusterError, DataError, ServerUnreachableError

da = pytest.importorskip("dask.array", reason="dask is an optional extra: pip install 'goldwatch[dask]'")
dd = pytest.importorskip("dask.dataframe", reason="dask is an optional extra: pip install 'goldwatch[dask]'")
distributed = pytest.importorskip("distributed", reason="an optional extra: pip install 'goldwatch[dask]'")

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

WORKER_MEMORY = 400 * 2**20


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, memory_limit=WORKER_MEMORY)
    with distributed.Client(cluster, set_as_default=True) as c:
        c.wait_for_workers(2, timeout=60)
        yield c
    cluster.close()


def _chunks(n: int, cuts: list[int]) -> tuple[int, ...]:
    """Row chunk sizes from arbitrary cut points (empty chunks dropped)."""
    points = sorted({0, n, *(c % (n + 1) for c in cuts)})
    return tuple(b - a for a, b in itertools.pairwise(points) if b > a)


def _data(seed: int, n1: int, n2: int, n_features: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n1, n_features))
    cur = rng.normal(0.2, 1.1, size=(n2, n_features))
    if ties:  # few distinct values: tie groups everywhere, across chunks
        ref, cur = np.round(ref * 2) / 2, np.round(cur * 2) / 2
    return ref, cur


sizes = st.tuples(st.integers(5, 300), st.integers(5, 300), st.integers(1, 4), st.booleans(), st.integers(0, 10**6),
                  st.lists(st.integers(0, 10**4), max_size=5), st.lists(st.integers(0, 10**4), max_size=5))


@settings(max_examples=12)
@given(case=sizes, strategy=st.sampled_from(["broadcast", "feature-blocks", "ranges"]))
def test_ks_equals_scipy_and_in_memory_for_random_chunkings(client, case, strategy):
    n1, n2, n_features, ties, seed, cuts1, cuts2 = case
    ref, cur = _data(seed, n1, n2, n_features, ties)
    res = gdd.ks_2samp(da.from_array(ref, chunks=(_chunks(n1, cuts1), n_features)),
                       da.from_array(cur, chunks=(_chunks(n2, cuts2), n_features)), strategy=strategy)
    mem = gd.ks_2samp(ref, cur)
    assert res.strategy == f"dask:{strategy}"
    assert np.array_equal(res.statistic, mem.statistic)
    assert np.array_equal(res.pvalue, mem.pvalue)
    for f in range(n_features):
        ref_f = stats.ks_2samp(ref[:, f], cur[:, f])
        assert res.statistic[f] == ref_f.statistic
        assert res.pvalue[f] == pytest.approx(ref_f.pvalue, rel=1e-9, abs=1e-300)


@settings(max_examples=10)
@given(case=sizes, strategy=st.sampled_from(["feature-blocks", "ranges"]))
def test_cvm_equals_in_memory_for_random_chunkings(client, case, strategy):
    n1, n2, n_features, ties, seed, cuts1, cuts2 = case
    ref, cur = _data(seed, n1, n2, n_features, ties)
    res = gdd.cramervonmises_2samp(da.from_array(ref, chunks=(_chunks(n1, cuts1), n_features)),
                                   da.from_array(cur, chunks=(_chunks(n2, cuts2), n_features)), strategy=strategy)
    mem = gd.cramervonmises_2samp(ref, cur)
    # the exact integer sums equal the in-memory float sums here (they are exact below 2^51 quarter units)
    assert np.array_equal(res.statistic, mem.statistic)
    assert np.array_equal(res.pvalue, mem.pvalue)
    scipy_p = [stats.cramervonmises_2samp(ref[:, f], cur[:, f]).pvalue for f in range(n_features)]
    assert np.allclose(res.pvalue, scipy_p, rtol=1e-9, atol=0)


def test_large_grid_path_and_dataframe_names(client):
    # more than SMALL_GRID distinct reference values: the sorted-chunk counting path
    ref, cur = _data(3, 6000, 9000, 3, ties=False)
    cur[:100, 1] = ref[:100, 1]  # current values equal to grid values: the sparse <= counts
    import pandas as pd

    frame = dd.from_pandas(pd.DataFrame(cur, columns=["age", "income", "score"]), npartitions=7)
    res = gd.ks_2samp(ref, frame)
    mem = gd.ks_2samp(ref, cur)
    assert res.feature_names == ["f0", "f1", "f2"] or res.feature_names == mem.feature_names
    assert np.array_equal(res.statistic, mem.statistic)
    assert np.array_equal(res.pvalue, mem.pvalue)
    named = gd.detect_drift(frame, frame.map_partitions(lambda p: p + 0.5))
    assert named.feature_names == ["age", "income", "score"]
    assert named.drifted
    assert named.strategy == "dask:broadcast"


@settings(max_examples=8)
@given(seed=st.integers(0, 10**6), test=st.sampled_from(["ks", "cvm", "psi", "js", "hellinger", "kl", "anderson"]),
       strategy=st.sampled_from(["auto", "feature-blocks"]))
def test_nan_policy_omit_matches_in_memory(client, seed, test, strategy):
    from goldwatch.detectors.distributed._api import SUPPORTED

    rng = np.random.default_rng(seed)
    ref, cur = _data(seed, 120, 200, 3, ties=bool(seed % 2))
    for arr in (ref, cur):
        arr[rng.random(arr.shape) < 0.05] = np.nan
        arr[rng.random(arr.shape) < 0.02] = np.inf
    if strategy != "auto" and strategy not in SUPPORTED[test]:
        strategy = "auto"
    res = gdd.detect_drift(da.from_array(ref, chunks=(37, 3)), da.from_array(cur, chunks=(51, 3)), test=test,
                           nan_policy="omit", strategy=strategy)
    mem = gd.detect_drift(ref, cur, test=test, nan_policy="omit")
    assert np.array_equal(res.statistic, mem.statistic, equal_nan=True)
    if mem.pvalue is not None:
        assert np.array_equal(res.pvalue, mem.pvalue, equal_nan=True)
    assert np.array_equal(res.n_dropped_reference, mem.n_dropped_reference)
    assert np.array_equal(res.n_dropped_current, mem.n_dropped_current)
    assert res.drifted_features.tolist() == mem.drifted_features.tolist()


def test_nan_policy_raise_names_the_counts(client):
    ref, cur = _data(1, 50, 60, 2, ties=False)
    cur[[3, 7], 1] = np.nan
    with pytest.raises(DataError, match=r"current has 2 non-finite value\(s\).*feature 1: 2"):
        gd.detect_drift(ref, da.from_array(cur, chunks=20))
    with pytest.raises(DataError, match="NaN or inf"):
        gd.ks_2samp(ref, da.from_array(cur, chunks=20))


def test_histogram_distances_and_wasserstein(client):
    ref, cur = _data(5, 800, 1500, 4, ties=False)
    dref, dcur = da.from_array(ref, chunks=(300, 4)), da.from_array(cur, chunks=(333, 4))
    for name, func in (("psi", gd.psi), ("js", gd.jensen_shannon), ("hellinger", gd.hellinger),
                       ("kl", gd.kl_divergence)):
        res, mem = func(dref, dcur, bins=7), func(ref, cur, bins=7)
        assert np.array_equal(res.statistic, mem.statistic), name
        assert res.drifted.tolist() == mem.drifted.tolist()
        assert res.strategy == "dask:broadcast"
    # Wasserstein is a float integral in memory too: the same code per feature block, equal to rounding
    for normed in (True, False):
        res, mem = gd.wasserstein(dref, dcur, normed=normed), gd.wasserstein(ref, cur, normed=normed)
        assert np.allclose(res.statistic, mem.statistic, rtol=1e-12, atol=0)
        assert res.test == mem.test


@settings(max_examples=8)
@given(seed=st.integers(0, 10**6), n_parts=st.integers(1, 6))
def test_categorical_columns(client, seed, n_parts):
    import pandas as pd

    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({"country": rng.choice(["de", "fr", "it"], 200), "plan": rng.choice(["a", "b"], 200),
                        "seats": rng.integers(1, 4, 200)})
    cur = pd.DataFrame({"country": rng.choice(["de", "fr", "es"], 150), "plan": rng.choice(["a", "b"], 150),
                        "seats": rng.integers(1, 5, 150)})
    res = gd.chi2_test(dd.from_pandas(ref, npartitions=n_parts), dd.from_pandas(cur, npartitions=n_parts))
    mem = gd.chi2_test(ref, cur)
    assert np.array_equal(res.result.statistic, mem.result.statistic)
    assert np.array_equal(res.result.pvalue, mem.result.pvalue)
    assert res.n_unseen.tolist() == mem.n_unseen.tolist()
    assert res.result.feature_names == ["country", "plan", "seats"]
    report = gd.detect_drift(dd.from_pandas(ref, npartitions=2), dd.from_pandas(cur, npartitions=3), test="chi2")
    assert report.drifted == gd.detect_drift(ref, cur, test="chi2").drifted


def test_reference_summary_fit_and_test(client, tmp_path):
    ref, cur = _data(7, 3000, 5000, 3, ties=False)
    summary = gd.ReferenceSummary.fit(da.from_array(ref, chunks=(700, 3)), feature_names=["a", "b", "c"])
    in_memory = gd.ReferenceSummary.fit(ref, feature_names=["a", "b", "c"])
    assert np.array_equal(summary.sorted_values, in_memory.sorted_values)
    dcur = da.from_array(cur, chunks=(999, 3))
    for test in ("ks", "psi", "cvm", "js"):
        res, mem = summary.test(dcur, test=test), in_memory.test(cur, test=test)
        assert np.array_equal(res.statistic, mem.statistic), test
        assert mem.pvalue is None or np.array_equal(res.pvalue, mem.pvalue), test
        assert res.feature_names == ["a", "b", "c"]
        assert res.strategy.startswith("dask:")


def test_parquet_directory_read_partition_by_partition(client, tmp_path):
    import pandas as pd

    ref, cur = _data(11, 400, 2000, 2, ties=False)
    out = tmp_path / "window"
    out.mkdir()
    for i, part in enumerate(np.array_split(cur, 5)):
        pd.DataFrame(part, columns=["x", "y"]).to_parquet(out / f"part-{i}.parquet")
    frame = dd.read_parquet(str(out))
    assert frame.npartitions == 5
    res = gd.detect_drift(pd.DataFrame(ref, columns=["x", "y"]), frame)
    mem = gd.detect_drift(ref, cur)
    assert np.array_equal(res.statistic, mem.statistic)
    assert res.feature_names == ["x", "y"]


def _integer_block(block_id: tuple[int, int], rows: int, n_features: int, shift: int) -> np.ndarray:
    """A deterministic chunk of integer-valued floats in [0, 64): regenerated identically by the test's oracle."""
    rng = np.random.default_rng([block_id[0], shift])
    return (rng.integers(0, 64, size=(rows, n_features)) + (rng.random((rows, n_features)) < 0.01) * shift).astype(
        np.float64)


@pytest.mark.slow
def test_out_of_core_current_several_times_worker_memory(client):
    rows, n_chunks, n_features = 250_000, 160, 4  # 160 x 8 MB = 1.28 GB generated lazily: 3.2x a worker's limit
    assert rows * n_chunks * n_features * 8 > 3 * WORKER_MEMORY
    current = da.map_blocks(lambda block_id=None: _integer_block(block_id, rows, n_features, 3),
                            chunks=((rows,) * n_chunks, (n_features,)), dtype=np.float64)
    reference = _integer_block((999, 0), 50_000, n_features, 0)
    res = gd.ks_2samp(reference, current)
    assert res.strategy == "dask:broadcast"
    # oracle: counts per value, streamed chunk by chunk here, and the ECDF gap at every value of the support
    cur_counts = np.zeros((n_features, 70), dtype=np.int64)
    for b in range(n_chunks):
        block = _integer_block((b, 0), rows, n_features, 3).astype(np.int64)
        for f in range(n_features):
            cur_counts[f] += np.bincount(block[:, f], minlength=70)
    ref_counts = np.stack([np.bincount(reference[:, f].astype(np.int64), minlength=70) for f in range(n_features)])
    n1, n2 = reference.shape[0], rows * n_chunks
    c1, c2 = np.cumsum(ref_counts, axis=1), np.cumsum(cur_counts, axis=1)
    expected = np.abs(c1 / n1 - c2 / n2).max(axis=1)
    assert np.array_equal(res.statistic, expected)
    assert res.n_current.tolist() == [n2] * n_features


def test_unreachable_scheduler_is_a_clear_error(free_port):
    from goldwatch.cluster import connect, parse_cluster_spec

    spec = parse_cluster_spec(f"127.0.0.1:{free_port}")
    expected = rf"tcp://127.0.0.1:{free_port}.*cannot reach the Dask scheduler"
    with pytest.raises(ServerUnreachableError, match=expected), connect(spec, timeout_s=1.0):
        pass


def _slow_block(block_id=None):
    time.sleep(0.25)
    return np.random.default_rng(block_id[0]).normal(size=(2000, 2))


def test_worker_killed_mid_computation_gives_the_exact_result(client):
    current = da.map_blocks(_slow_block, chunks=((2000,) * 12, (2,)), dtype=np.float64)
    ref = np.random.default_rng(5).normal(size=(500, 2))
    expected = gd.ks_2samp(ref, np.concatenate([np.random.default_rng(b).normal(size=(2000, 2)) for b in range(12)]))
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    killer = threading.Timer(0.6, os.kill, args=(victim, signal.SIGKILL))
    killer.start()
    try:
        res = gd.ks_2samp(ref, current)
    finally:
        killer.join()
    assert np.array_equal(res.statistic, expected.statistic)
    assert np.array_equal(res.pvalue, expected.pvalue)
    client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker


def _poison_block(block_id=None):
    if block_id[0] == 2:
        os._exit(17)  # a chunk that crashes every worker that touches it
    return np.ones((10, 2))


def test_chunk_that_keeps_killing_workers_is_a_clear_error(client):
    scheduler = client.cluster.scheduler
    before = scheduler.allowed_failures
    scheduler.allowed_failures = 1
    try:
        current = da.map_blocks(_poison_block, chunks=((10,) * 4, (2,)), dtype=np.float64)
        # the scheduler gives the task up (KilledWorker), or loses it with every worker: a clear error either way
        with pytest.raises(ClusterError, match=r"(kept killing its workers|lost the computation).*no partial result"):
            gd.ks_2samp(np.zeros((5, 2)), current)
    finally:
        scheduler.allowed_failures = before
        client.wait_for_workers(2, timeout=60)


def test_strategy_checks():
    ref, cur = da.zeros((10, 2), chunks=5), da.zeros((10, 2), chunks=5)
    with pytest.raises(DataError, match="cannot run exactly with strategy 'broadcast'"):
        gdd.cramervonmises_2samp(ref, cur, strategy="broadcast")
    with pytest.raises(DataError, match="expected one of auto, broadcast"):
        gdd.ks_2samp(ref, cur, strategy="sketch")
    with pytest.raises(DataError, match="expected 2 features"):
        gd.ks_2samp(ref, da.zeros((10, 3), chunks=5))
    with pytest.raises(DataError, match="expected numeric"):
        gd.ks_2samp(ref, da.from_array(np.array([["a", "b"]] * 3, dtype=object), chunks=(2, 2)))


def test_chunks_are_never_modified():
    import dask

    x = np.random.default_rng(2).normal(size=(100, 1))
    before = x.copy()
    with dask.config.set(scheduler="synchronous"):  # chunks are views of x itself
        for strategy in ("broadcast", "ranges", "feature-blocks"):
            gdd.ks_2samp(x[:40], da.from_array(x, chunks=30), strategy=strategy)
    assert np.array_equal(x, before)


def test_cli_drift_on_the_cluster_named_in_the_config(client, tmp_path, monkeypatch):
    import subprocess
    import sys
    from pathlib import Path

    import pandas as pd
    from click.testing import CliRunner

    from goldwatch.cli import main

    ref, cur = _data(13, 500, 3000, 2, ties=False)
    cur[:, 1] += 0.5
    pd.DataFrame(ref, columns=["a", "b"]).to_parquet(tmp_path / "ref.parquet")
    (tmp_path / "window").mkdir()
    for i, part in enumerate(np.array_split(cur, 3)):
        pd.DataFrame(part, columns=["a", "b"]).to_parquet(tmp_path / "window" / f"p{i}.parquet")
    config = tmp_path / "goldwatch.toml"
    config.write_text(f'[dask]\naddress = "{client.scheduler.address}"\n')
    # the command line as a user runs it: its own process and its own client of the cluster
    goldwatch_bin = str(Path(sys.executable).with_name("goldwatch"))
    env = {k: v for k, v in os.environ.items() if k != "GOLDWATCH_DASK"}
    out = subprocess.run([goldwatch_bin, "--config", str(config), "drift", str(tmp_path / "ref.parquet"),
                          str(tmp_path / "window" / "*.parquet")], capture_output=True, text=True, env=env,
                         timeout=120, check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "drift:ks:b" in out.stdout
    assert f"[dask:broadcast on {client.scheduler.address}]" in out.stdout
    env["GOLDWATCH_DASK"] = client.scheduler.address  # the environment wins over the config
    out = subprocess.run([goldwatch_bin, "drift", str(tmp_path / "ref.parquet"), str(tmp_path / "window"),
                          "--test", "cvm", "--json"], capture_output=True, text=True, env=env, cwd=tmp_path / "window",
                         timeout=120, check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    assert '"strategy": "dask:feature-blocks"' in out.stdout
    monkeypatch.setenv("GOLDWATCH_DASK", "local:zero")  # checked before anything connects
    bad = CliRunner().invoke(main, ["--config", str(config), "drift", str(tmp_path / "ref.parquet"),
                                    str(tmp_path / "window")])
    assert bad.exit_code == 2
    assert "$GOLDWATCH_DASK: expected 'local:N' with N >= 1 workers" in bad.output


def test_cluster_spec_precedence(monkeypatch):
    from goldwatch.cluster import ClusterSpec, resolve_cluster_spec

    monkeypatch.delenv("GOLDWATCH_DASK", raising=False)
    assert resolve_cluster_spec(None, None) is None
    assert resolve_cluster_spec(None, "sched:8786") == ClusterSpec(address="tcp://sched:8786")
    monkeypatch.setenv("GOLDWATCH_DASK", "local:3")
    assert resolve_cluster_spec(None, "sched:8786") == ClusterSpec(local_workers=3)
    assert resolve_cluster_spec("tls://x:1", "sched:8786") == ClusterSpec(address="tls://x:1")


def test_summary_fitted_with_nan_omitted(client):
    ref, cur = _data(17, 400, 700, 2, ties=True)
    ref[::9, 0] = np.nan
    cur[::13, 1] = np.nan
    summary = gd.ReferenceSummary.fit(ref, nan_policy="omit")
    for test in ("ks", "psi", "cvm"):
        res = summary.test(da.from_array(cur, chunks=(250, 2)), test=test, nan_policy="omit")
        mem = summary.test(cur, test=test, nan_policy="omit")
        assert np.array_equal(res.statistic, mem.statistic), test
        assert mem.pvalue is None or np.array_equal(res.pvalue, mem.pvalue), test
        assert np.array_equal(res.n_dropped_reference, mem.n_dropped_reference), test
        assert np.array_equal(res.n_dropped_current, mem.n_dropped_current), test
