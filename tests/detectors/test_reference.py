"""ReferenceSummary: same answers as detect_drift, saved without pickle, tampering refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from goldwatch.detectors import ReferenceSummary, detect_drift
from goldwatch.errors import DataError


@pytest.mark.parametrize("test", ["ks", "psi", "js", "hellinger", "kl", "cvm", "anderson", "wasserstein"])
def test_summary_gives_the_detect_drift_answer(rng, test) -> None:
    ref = rng.normal(size=(2000, 3))
    cur = rng.normal([0.0, 0.3, 0.0], size=(700, 3))
    summary = ReferenceSummary.fit(ref)
    ours, direct = summary.test(cur, test=test), detect_drift(ref, cur, test=test)
    np.testing.assert_allclose(ours.statistic, direct.statistic, rtol=1e-12, atol=1e-15)
    assert ours.drifted_features.tolist() == direct.drifted_features.tolist()


def test_many_windows_against_one_reference(rng, tmp_path) -> None:
    summary = ReferenceSummary.fit(rng.normal(size=(5000, 4)), feature_names=["a", "b", "c", "d"])
    summary.save(tmp_path / "ref")
    loaded = ReferenceSummary.load(tmp_path / "ref.json")
    verdicts = [loaded.test(rng.normal(size=(500, 4))).drifted for _ in range(5)]
    assert verdicts == [False] * 5
    shifted = rng.normal(size=(500, 4))
    shifted[:, 3] *= 3
    report = loaded.test(shifted)
    assert report.drifted
    assert report.feature_names == ["a", "b", "c", "d"]
    assert report.drifted_features.tolist() == [False, False, False, True]


def test_saved_files_are_plain_npz_and_json(rng, tmp_path) -> None:
    ReferenceSummary.fit(rng.normal(size=(100, 2))).save(tmp_path / "ref.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.json", "ref.npz"]
    meta = json.loads((tmp_path / "ref.json").read_text())
    assert meta["format"] == "goldwatch.reference_summary"
    assert meta["n_samples"] == 100
    with np.load(tmp_path / "ref.npz", allow_pickle=False) as npz:
        assert npz["sorted_values"].shape == (100, 2)


def test_tampered_or_missing_files_are_refused(rng, tmp_path) -> None:
    summary = ReferenceSummary.fit(rng.normal(size=(100, 2)))
    summary.save(tmp_path / "ref")
    data = bytearray((tmp_path / "ref.npz").read_bytes())
    data[-40] ^= 1
    (tmp_path / "ref.npz").write_bytes(bytes(data))
    with pytest.raises(DataError, match="SHA-256 differs"):
        ReferenceSummary.load(tmp_path / "ref")
    with pytest.raises(DataError, match="not found"):
        ReferenceSummary.load(tmp_path / "other")
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    (tmp_path / "bad.npz").write_bytes(b"")
    with pytest.raises(DataError, match="not a goldwatch reference summary"):
        ReferenceSummary.load(tmp_path / "bad")


def test_failed_save_leaves_no_partial_file(rng, tmp_path, monkeypatch) -> None:
    summary = ReferenceSummary.fit(rng.normal(size=(100, 2)))
    summary.save(tmp_path / "ref")
    before = (tmp_path / "ref.npz").read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        ReferenceSummary.fit(rng.normal(size=(50, 2))).save(tmp_path / "ref")
    assert (tmp_path / "ref.npz").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.json", "ref.npz"]


def test_nan_policy(rng) -> None:
    ref = rng.normal(size=(300, 2))
    ref[:7, 1] = np.nan
    with pytest.raises(DataError, match="reference has 7 non-finite"):
        ReferenceSummary.fit(ref)
    summary = ReferenceSummary.fit(ref, nan_policy="omit")
    assert summary.n_finite.tolist() == [300, 293]
    np.testing.assert_allclose(summary.histogram.sum(axis=1), 1.0)
    cur = rng.normal(size=(200, 2))
    direct = detect_drift(ref, cur, nan_policy="omit")
    np.testing.assert_allclose(summary.test(cur).statistic, direct.statistic)
    cur[0, 0] = np.nan
    with pytest.raises(DataError, match="current has 1 non-finite"):
        summary.test(cur)


def test_wrong_feature_count_and_categorical_test(rng) -> None:
    summary = ReferenceSummary.fit(rng.normal(size=(100, 2)))
    with pytest.raises(DataError, match="current: expected 2 features"):
        summary.test(np.zeros((10, 3)))
    with pytest.raises(DataError, match="categorical"):
        summary.test(np.zeros((10, 2)), test="chi2")
