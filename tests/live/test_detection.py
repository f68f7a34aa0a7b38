"""What pages and what does not: drift, prediction drift, data quality and slow drift, on generated data and on a
real dataset shipped with scikit-learn, split by a feature's value (a real shift, not a generated one)."""

from __future__ import annotations

import numpy as np
import pytest

from goldwatch.config import LiveDriftConfig
from goldwatch.watchdog.live import ModelMonitor, ReferenceStore
from goldwatch.watchdog.live.payload import Tensor, Tensors
from goldwatch.watchdog.live.reference import build_reference
from goldwatch.watchdog.live.schema import Column, Schema


def run_windows(monitor: ModelMonitor, windows: list[dict]) -> list:
    results = []
    for rows in windows:
        monitor.submit_rows(rows.get("inputs"), rows.get("outputs"))
        results += monitor.process()
    return results


def make(schema: Schema, ref_in: dict, ref_out: dict | None = None, **cfg) -> ModelMonitor:
    def tensors(cols: dict) -> Tensors:
        return Tensors({k: Tensor(np.asarray(v, dtype=object) if np.asarray(v).dtype.kind in "USO"
                                  else np.asarray(v, dtype=np.float64), "BYTES" if np.asarray(v).dtype.kind in "USO"
                                  else "FP64") for k, v in cols.items()})

    ref = build_reference(tensors(ref_in), tensors(ref_out) if ref_out else None, schema, version=None,
                          source="test reference")
    config = LiveDriftConfig(**({"window_rows": 5000, "min_window_rows": 500} | cfg))
    return ModelMonitor("m", config, references=ReferenceStore.fixed(ref), schema=schema, clock=lambda: 0.0)


NUMERIC = Schema.from_columns([Column(f"f{i}") for i in range(20)])


def normal(rng: np.random.Generator, n: int) -> dict:
    x = rng.normal(size=(n, 20))
    return {f"f{i}": x[:, i] for i in range(20)}


def test_stable_windows_do_not_page_a_small_shift_pages_in_two_windows_a_nan_spike_in_one() -> None:
    rng = np.random.default_rng(10)
    m = make(NUMERIC, normal(rng, 50_000))
    stable = run_windows(m, [{"inputs": normal(rng, 5000)} for _ in range(6)])
    assert not any(r.state.paging or r.state.quality_paging or r.drifted for r in stable)
    shifted = []
    for _ in range(2):
        rows = normal(rng, 5000)
        rows["f7"] = rows["f7"] + 0.2  # 0.2 standard deviations, one feature of twenty
        shifted += run_windows(m, [{"inputs": rows}])
    assert [r.drifted for r in shifted] == [True, True]
    assert [r.state.paging for r in shifted] == [False, True]  # two windows in a row: the page
    (f7,) = [f for f in shifted[1].inputs.features if f.drifted]
    assert f7.name == "f7"
    assert f7.effect > 0.05
    check = shifted[1].drift_checks()[0]
    assert check.status == "fail"
    assert "f7" in check.summary
    assert check.details["top"][0]["name"] == "f7"
    nan = normal(rng, 5000)
    nan["f3"][rng.random(5000) < 0.10] = np.nan  # upstream broke: 10% NaN
    (broken,) = run_windows(m, [{"inputs": nan}])
    assert broken.state.quality_paging
    failed = [q for q in broken.inputs.quality if q.failed]
    assert [(q.name, q.check) for q in failed] == [("f3", "nan")]
    assert broken.quality_checks()[0].status == "fail"
    # the NaN are left out of the drift test: f3's finite values are as in the reference
    assert not next(f for f in broken.inputs.features if f.name == "f3").drifted
    (recovered,) = run_windows(m, [{"inputs": normal(rng, 5000)}])
    assert not recovered.state.paging
    assert not recovered.state.quality_paging
    assert [c.status for c in recovered.drift_checks() + recovered.quality_checks()] == ["pass", "skip", "pass"]


def test_the_effect_floor_keeps_huge_windows_from_paging_on_harmless_differences() -> None:
    rng = np.random.default_rng(11)
    schema = Schema.from_columns([Column("a"), Column("b")])
    m = make(schema, {"a": rng.normal(size=100_000), "b": rng.normal(size=100_000)}, window_rows=100_000)
    rows = {"a": rng.normal(0.03, 1.0, size=100_000), "b": rng.normal(size=100_000)}  # significant, harmless
    (w,) = run_windows(m, [{"inputs": rows}])
    a = w.inputs.features[0]
    assert a.adjusted_pvalue is not None
    assert a.adjusted_pvalue < 0.01
    assert a.effect < 0.05
    assert not a.drifted
    assert not w.drifted


def test_categorical_drift_unseen_categories_and_prediction_drift() -> None:
    rng = np.random.default_rng(12)
    schema = Schema.from_columns([Column("amount"), Column("country", "categorical")],
                                 [Column("score"), Column("label", "categorical")])
    countries = np.array(["de", "fr", "it", "es"])
    ref_in = {"amount": rng.lognormal(3, 1, 20_000), "country": rng.choice(countries, 20_000, p=[.4, .3, .2, .1])}
    ref_out = {"score": rng.beta(2, 5, 20_000), "label": rng.choice(["ok", "fraud"], 20_000, p=[.97, .03])}
    m = make(schema, ref_in, ref_out, window_rows=3000, min_window_rows=300)
    same = run_windows(m, [{"inputs": {"amount": rng.lognormal(3, 1, 3000),
                                       "country": rng.choice(countries, 3000, p=[.4, .3, .2, .1])},
                            "outputs": {"score": rng.beta(2, 5, 3000),
                                        "label": rng.choice(["ok", "fraud"], 3000, p=[.97, .03])}}])
    assert not same[0].drifted
    assert not same[0].quality_failed
    moved = run_windows(m, [{"inputs": {"amount": rng.lognormal(3, 1, 3000),
                                        "country": rng.choice(np.array(["de", "fr", "it", "es", "pl"]), 3000,
                                                              p=[.25, .25, .2, .1, .2])},
                             "outputs": {"score": rng.beta(2, 3, 3000),
                                         "label": rng.choice(["ok", "fraud"], 3000, p=[.9, .1])}}])[0]
    country = next(f for f in moved.inputs.features if f.name == "country")
    assert country.drifted
    assert country.test == "chi2"
    assert country.effect > 0.15
    assert [(q.name, q.check) for q in moved.inputs.quality if q.failed] == [("country", "unseen_category")]
    assert moved.outputs is not None
    assert {f.name for f in moved.outputs.features if f.drifted} == {"score", "label"}
    assert [c.name for c in moved.drift_checks()] == ["drift:inputs", "drift:predictions"]


def test_schema_violations_and_out_of_range_values_break_data_quality() -> None:
    rng = np.random.default_rng(13)
    schema = Schema.from_columns([Column("a"), Column("b")])
    m = make(schema, {"a": rng.normal(size=20_000), "b": rng.uniform(0, 1, 20_000)}, window_rows=2000,
             min_window_rows=200)
    for _ in range(40):  # requests whose body does not fit the schema (no column b) ...
        m.submit_rows({"a": np.zeros(3)})
    b = rng.uniform(0, 1, 2000)
    b[:300] = rng.uniform(5, 10, 300)  # ... and 15% far outside the reference's range (a unit changed upstream)
    m.submit_rows({"a": rng.normal(size=2000), "b": b})
    (w,) = m.process()
    failed = {(q.name, q.check) for q in w.inputs.quality if q.failed}
    assert failed == {("b", "out_of_range"), ("*", "schema")}


def test_a_slow_drift_no_window_proves_is_caught_by_the_streaming_detector() -> None:
    """1,000-row windows; one feature shifted by 0.12 sigma: its p-value is small (~1e-2) but never below the
    Bonferroni level of 20 features, window after window. The CUSUM of its z-scores adds that up and pages."""
    rng = np.random.default_rng(14)
    m = make(NUMERIC, normal(rng, 50_000), window_rows=1000, min_window_rows=100, min_effect=None)
    results = []
    for _ in range(25):
        rows = normal(rng, 1000)
        rows["f2"] = rows["f2"] + 0.12
        results += run_windows(m, [{"inputs": rows}])
    alarms = [r.index for r in results if r.trend_alarm]
    assert alarms, alarms
    assert alarms[0] <= 15, alarms
    first = results[alarms[0]]
    assert [f.name for f in first.inputs.features if f.trend_alarm] == ["f2"]
    assert all(r.state.paging for r in results[alarms[0]:])  # latched while the drift lasts: no flapping
    assert "streaming detector" in first.drift_checks()[0].summary or first.drifted


def _breast_cancer() -> tuple[np.ndarray, list[str]]:
    sklearn = pytest.importorskip("sklearn.datasets", reason="scikit-learn (dev extra) ships the real dataset")
    data = sklearn.load_breast_cancer()
    return np.asarray(data.data, dtype=np.float64), [str(n) for n in data.feature_names]


def test_real_dataset_split_by_a_feature_value_drifts_a_random_split_does_not() -> None:
    """The Wisconsin breast-cancer measurements (569 tumours x 30 features, shipped with scikit-learn). Reference:
    the tumours whose mean smoothness is below its median; live traffic: those above -- a real population shift,
    carried by the features that go with smoothness. A random split of the same rows stays quiet."""
    x, names = _breast_cancer()
    schema = Schema.from_columns([Column(n) for n in names])
    smooth = x[:, names.index("mean smoothness")]
    low, high = x[smooth < np.median(smooth)], x[smooth >= np.median(smooth)]
    m = make(schema, {n: low[:, j] for j, n in enumerate(names)}, window_rows=140, min_window_rows=50)
    shifted = run_windows(m, [{"inputs": {n: high[i::2, j] for j, n in enumerate(names)}} for i in range(2)])
    drifted = {f.name for f in shifted[0].inputs.features if f.drifted}
    assert {"mean smoothness", "worst smoothness"} <= drifted
    assert "mean radius" not in drifted  # size is unrelated to smoothness here
    assert [r.state.paging for r in shifted] == [False, True]

    rng = np.random.default_rng(15)
    order = rng.permutation(x.shape[0])
    ref, live = x[order[:284]], x[order[284:]]
    quiet = make(schema, {n: ref[:, j] for j, n in enumerate(names)}, window_rows=140, min_window_rows=50)
    results = run_windows(quiet, [{"inputs": {n: live[i::2, j] for j, n in enumerate(names)}} for i in range(2)])
    assert not any(r.drifted or r.state.paging or r.quality_failed for r in results)
