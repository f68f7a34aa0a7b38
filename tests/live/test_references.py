"""References from files, golden sets and the registry; the reference follows the version the registry serves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from goldwatch.config import LiveDriftModelConfig, LiveDriftSection
from goldwatch.errors import DataError
from goldwatch.watchdog.live import LiveDrift, load_reference
from goldwatch.watchdog.live.schema import Column, Schema
from tests.live.support import write_golden

SCHEMA = Schema.from_columns([Column("age"), Column("plan", "categorical")], [Column("score")])


def frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    age = rng.normal(40, 10, n)
    age[:5] = np.nan  # the reference's own NaN rate is not zero
    return pd.DataFrame({"age": age, "plan": rng.choice(["free", "gold"], n), "score": rng.random(n),
                         "unused": 1.0})


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npz"])
def test_reference_files_by_column_name(tmp_path, suffix) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow", reason="parquet needs the parquet extra")
    df = frame(np.random.default_rng(0), 3000)
    path = tmp_path / f"ref{suffix}"
    if suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".parquet":
        df.to_parquet(path)
    else:
        np.savez(path, age=df["age"].to_numpy(), plan=df["plan"].to_numpy().astype(str), score=df["score"].to_numpy())
    ref = load_reference(path, SCHEMA, version="7")
    assert (ref.version, ref.source) == ("7", str(path))
    assert ref.inputs.numeric_names == ["age"]
    assert ref.inputs.categorical_names == ["plan"]
    assert ref.inputs.nan_rate[0] == pytest.approx(5 / 3000)
    assert sorted(ref.inputs.categories[0]) == ["free", "gold"]
    assert ref.outputs is not None
    assert ref.outputs.numeric_names == ["score"]
    assert ref.inputs.clean_columns.size == 0  # age has NaN: its KS takes the path that omits them


def test_a_reference_without_the_models_columns_is_refused(tmp_path) -> None:
    path = tmp_path / "ref.csv"
    pd.DataFrame({"other": [1.0, 2.0, 3.0]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"does not fit the schema.*'age'"):
        load_reference(path, SCHEMA)


def test_golden_set_reference_and_schema_from_its_signature(tmp_path) -> None:
    golden = write_golden(tmp_path / "golden")
    section = LiveDriftSection(models=[LiveDriftModelConfig(name="m", reference_golden=golden, window_rows=1000,
                                                            min_window_rows=100)])
    live = LiveDrift.from_config(section)
    mon = live.monitor("m")
    assert mon.schema is not None
    assert [c.name for c in mon.schema.inputs] == ["x[0]", "x[1]", "x[2]"]
    assert [c.name for c in mon.schema.outputs] == ["scores[0]", "scores[1]", "scores:argmax"]
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1000, 3))
    x[:, 0] += 1.0  # the first feature moves, and so do the predicted classes
    scores = np.column_stack([x[:, 0], -x[:, 0]])
    live.observe("m", {"inputs": [{"name": "x", "shape": [1000, 3], "datatype": "FP32", "data": x.ravel().tolist()}]},
                 {"outputs": [{"name": "scores", "shape": [1000, 2], "datatype": "FP32",
                               "data": scores.ravel().tolist()}]})
    (w,) = live.process()
    assert w.reference.startswith("golden: ")
    assert [f.name for f in w.inputs.features if f.drifted] == ["x[0]"]
    assert w.outputs is not None
    assert {f.name for f in w.outputs.features if f.drifted} == {"scores[0]", "scores[1]", "scores:argmax"}


def test_registry_reference_follows_the_served_version_through_a_rollback(tmp_path) -> None:
    """Version 1 and 2 link golden sets of different populations. The sidecar says version 2 is served, then
    (after a rollback) version 1: each window is tested against the golden set of the version served."""
    from goldwatch.watchdog.registry import Registry
    from tests.registry.registry_helpers import write_weights

    with Registry.open(tmp_path / "reg") as reg:
        v1 = reg.add("m", write_weights(tmp_path / "a1", 1), golden=[write_golden(tmp_path / "g1", shift=0.0)])
        v2 = reg.add("m", write_weights(tmp_path / "a2", 2), golden=[write_golden(tmp_path / "g2", shift=1.0)])
        section = LiveDriftSection(models=[LiveDriftModelConfig(name="m", reference_registry=True, window_rows=800,
                                                                min_window_rows=100)])
        live = LiveDrift.from_config(section, registry=reg)
        rng = np.random.default_rng(2)

        def window_like(shift: float):
            x = rng.normal(shift, 1.0, size=(800, 3))
            live.observe("m", {"x[0]": x[:, 0], "x[1]": x[:, 1], "x[2]": x[:, 2]})  # columns by name
            return live.process()

        live.set_version("m", v2.version)
        (w2,) = window_like(1.0)
        assert (w2.version, w2.drifted) == ("2", False)
        assert "g2" in w2.reference
        live.set_version("m", v1.version)  # the rollback
        (w1,) = window_like(1.0)  # the same traffic now drifts: version 1 was approved on other data
        assert (w1.version, w1.drifted) == ("1", True)
        assert "g1" in w1.reference
        (w1b,) = window_like(0.0)
        assert not w1b.drifted
