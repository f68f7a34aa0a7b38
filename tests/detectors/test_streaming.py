"""Page-Hinkley, CUSUM and ADWIN: one stream at a time (the scalar path) and many at once (vectorized).

River is the anchor: where it is installed (the dev extra pins it), the tests that count false alarms and alarms
per change run River's detectors on the same streams and hold goldwatch's to River's figures.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goldwatch.detectors import ADWIN, CUSUM, PageHinkley
from goldwatch.errors import DataError

DETECTORS = [PageHinkley, CUSUM, ADWIN]


def make(cls, n_streams: int, *, reference: np.ndarray | None = None, **kwargs):
    """A detector of ``n_streams``; CUSUM's in-control mean and std come from ``reference`` (default N(0, 1))."""
    if cls is CUSUM:
        if reference is None:
            return CUSUM(mean=np.zeros(n_streams), std=np.ones(n_streams), **kwargs)
        return CUSUM.from_reference(reference, **kwargs)
    return cls(n_streams=n_streams, **kwargs)


def run(detector, data: np.ndarray, block: int) -> np.ndarray:
    """Feed ``data`` (T, S) in blocks; return the alarms per step as a (T, S) boolean (block == 1 only)."""
    alarms = np.zeros(data.shape, dtype=bool)
    for lo in range(0, data.shape[0], block):
        detector.update(data[lo : lo + block])
        if block == 1:
            alarms[lo] = detector.drift_detected
    return alarms


def run_scalar(detector, values: list[float]) -> list[int]:
    """Feed one Python float at a time (River's usage); the steps at which the detector alarmed."""
    out = []
    for i, value in enumerate(values):
        detector.update(value)
        if detector.drift_detected:
            out.append(i)
    return out


def first_alarm(detector, data: np.ndarray, block: int) -> np.ndarray:
    """Start row of the block in which each stream first alarmed (-1: never)."""
    first = np.full(data.shape[1], -1)
    for lo in range(0, data.shape[0], block):
        detector.update(data[lo : lo + block])
        first = np.where((first < 0) & detector.drift_detected, lo, first)
    return first


def stable(kind: str, seed: int, shape: tuple[int, int]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.normal(5.0, 3.0, size=shape)
    return rng.exponential(2.0, size=shape)  # right-skewed: the hard case for a cumulative sum's upper side


def river_drift():
    return pytest.importorskip("river.drift", reason="River (the anchor) is in the dev extra: pip install -e '.[dev]'")


# -- false alarms and detection delay ------------------------------------------------------------------------


# A tabular CUSUM assumes a symmetric in-control distribution: its docstring says to take logs of skewed data.
STABLE_CASES = [(PageHinkley, "normal"), (PageHinkley, "exponential"), (CUSUM, "normal"), (ADWIN, "normal"),
                (ADWIN, "exponential")]


@pytest.mark.parametrize(("cls", "kind"), STABLE_CASES)
def test_defaults_do_not_alarm_on_stable_streams(cls, kind) -> None:
    reference = stable(kind, 100, (5000, 300))
    first = first_alarm(make(cls, 300, reference=reference), stable(kind, 1, (3000, 300)), 100)
    # Page-Hinkley and CUSUM on at most one in 300 streams. ADWIN keeps River's delta=0.002 (measured on
    # 1,000 x 10,000: 0.5% normal, 0.8% exponential).
    allowed = 9 if cls is ADWIN else 1
    assert (first >= 0).sum() <= allowed, (cls.__name__, kind, np.flatnonzero(first >= 0))


@pytest.mark.slow
@pytest.mark.parametrize(("cls", "kind"), [(PageHinkley, "normal"), (PageHinkley, "exponential"), (CUSUM, "normal")])
def test_false_alarms_on_1000_stable_streams_of_10000_values(cls, kind) -> None:
    """1,000 stable streams x 10,000 values: at most 1% alarm (measured: Page-Hinkley 0.04% normal, 0.16%
    exponential; CUSUM 0.6% normal with the in-control mean and std known)."""
    reference = stable(kind, 99, (20_000, 1000))
    first = first_alarm(make(cls, 1000, reference=reference), stable(kind, 2024, (10_000, 1000)), 500)
    assert (first >= 0).sum() <= 10, (cls.__name__, kind, int((first >= 0).sum()))


@pytest.mark.parametrize(("cls", "kind"), [(PageHinkley, "normal"), (PageHinkley, "exponential"), (CUSUM, "normal")])
def test_one_std_shift_is_detected_within_a_bounded_delay(cls, kind) -> None:
    data = stable(kind, 3, (2600, 200))
    data[2000:] += data[:2000].std(axis=0)  # a one-standard-deviation mean shift at row 2000
    first = first_alarm(make(cls, 200, reference=data[:2000]), data, 10)
    assert (first >= 2000).all(), np.sort(first)[:5]  # nothing before the change
    delay = first - 2000 + 10  # the alarm came at the latest at the end of its block
    # measured (one value at a time): Page-Hinkley median ~70; CUSUM (k=0.5, h=14) ~30
    assert np.median(delay) <= 100, (cls.__name__, kind, np.median(delay))
    assert delay.max() <= 200, (cls.__name__, kind, delay.max())


@pytest.mark.parametrize("cls", DETECTORS)
def test_mean_shift_is_detected_on_the_shifted_streams_only(cls) -> None:
    rng = np.random.default_rng(2)
    data = rng.normal(size=(4000, 50))
    data[2000:, :10] += 1.0
    det = make(cls, 50)
    first = np.full(50, -1)
    for t0, block in zip(range(0, 4000, 100), np.split(data, 40)):
        det.update(block)
        first = np.where((first < 0) & det.drift_detected, t0, first)
    assert (first[:10] >= 1900).all(), first[:10]
    assert (first[:10] <= 3000).all(), first[:10]
    assert (first[10:] < 0).mean() >= 0.9


# -- the defects found side by side with River ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["scalar", "vectorized"])
def test_page_hinkley_ignores_the_first_different_value_of_a_constant_stream(path) -> None:
    """A stream constant since its start: its first different value used to be a z-score of ~1e12 (the standard
    deviation floor) and an alarm. Now a value is judged against a spread that includes it: at most sqrt(n)."""
    values = [0.0] * 300 + [1.0] + [0.0] * 300 + [1.0] + [0.0] * 300
    if path == "scalar":
        assert run_scalar(PageHinkley(), values) == []
    else:
        det = PageHinkley(n_streams=3)
        data = np.column_stack([values, [7.5] * len(values), np.array(values) * -1e6])
        alarms = run(det, data, 1)
        assert not alarms.any(), np.argwhere(alarms)[:5]
    # a permanent jump away from a constant level still alarms, a few values later
    jump = run_scalar(PageHinkley(), [4.0] * 100 + [9.0] * 30)
    assert jump, jump
    assert 100 <= jump[0] <= 125, jump  # measured: 16 values after the jump


def test_page_hinkley_on_stable_error_rate_streams_alarms_like_river() -> None:
    """0/1 error indicators with p = 0.01, the classic use: 10,000 steps each. The former standardisation alarmed
    on ~3 in 4 such streams (each stream's first error after a run of zeros); River's Page-Hinkley with the same
    parameters in data units (delta = 0.1 sigma, threshold = 65 sigma, no forgetting) alarms on ~2%."""
    rd = river_drift()
    rng = np.random.default_rng(11)
    n, steps, p = 200, 10_000, 0.01
    data = (rng.random((steps, n)) < p).astype(np.float64)
    ours = int((first_alarm(PageHinkley(n_streams=n), data, 100) >= 0).sum())
    sigma = math.sqrt(p * (1 - p))
    theirs, n_river = 0, 100
    for j in range(n_river):
        ph = rd.PageHinkley(delta=0.1 * sigma, threshold=65 * sigma, alpha=1.0)
        for value in data[:, j].tolist():
            ph.update(value)
            if ph.drift_detected:
                theirs += 1
                break
    theirs = theirs * n // n_river
    assert ours <= max(2 * theirs, theirs + 4), (ours, theirs)
    assert ours <= 0.04 * n, ours


def _one_change(kind: str, n: int, seed: int) -> np.ndarray:
    """(10,000, n) normal streams: an abrupt one-sigma step at 5,000, or a ramp 5,000..7,000 to one sigma."""
    data = np.random.default_rng(seed).normal(size=(10_000, n))
    if kind == "abrupt":
        data[5000:] += 1.0
    else:
        data[5000:7000] += np.linspace(0.0, 1.0, 2000)[:, None]
        data[7000:] += 1.0
    return data


@pytest.mark.parametrize("kind", ["abrupt", "gradual"])
def test_adwin_raises_one_alarm_per_change_like_river(kind) -> None:
    """The former ADWIN raised 1.4-1.6 alarms per abrupt change and 3.3 per ramp (River: 1.0 and 2.1): the part of
    the window it kept after a cut still held values from before the change, and the next cuts reported them as
    new changes."""
    rd = river_drift()
    n = 100
    data = _one_change(kind, n, seed=5)
    det = ADWIN(n_streams=n)
    after = np.zeros(n, dtype=np.int64)
    for lo in range(0, 10_000, 100):
        det.update(data[lo : lo + 100])
        if lo >= 5000:
            after += det.drift_detected
    assert int(det.n_detections.sum()) == int(after.sum())  # nothing before the change
    n_river, river_after = 30, 0
    for j in range(n_river):
        adwin = rd.ADWIN()
        for i, value in enumerate(data[:, j].tolist()):
            adwin.update(value)
            river_after += adwin.drift_detected and i >= 5000
    ours, theirs = after.mean(), river_after / n_river
    if kind == "abrupt":
        assert (after == 1).all(), np.bincount(after)
    else:
        assert ours <= theirs + 0.2, (ours, theirs)  # measured: 1.9 vs River's 2.1


# -- CUSUM is a tabular CUSUM against a reference, not Page-Hinkley ---------------------------------------------


def _textbook_cusum(values: list[float], mean: float, std: float, k: float, h: float, mode: str = "both",
                    restart: float = 0.0) -> list[int]:
    """Montgomery's tabular CUSUM (both sides, or one), restarted at ``restart`` (a headstart) after each signal."""
    s_up = s_down = 0.0
    out = []
    for i, x in enumerate(values):
        z = (x - mean) / std
        s_up, s_down = max(0.0, s_up + z - k), max(0.0, s_down - z - k)
        if (s_up > h and mode != "down") or (s_down > h and mode != "up"):
            out.append(i)
            s_up = s_down = restart
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.sampled_from([0.25, 0.5, 1.0]), h=st.sampled_from([4.0, 5.0, 8.0]),
       mode=st.sampled_from(["both", "up", "down"]), restart=st.sampled_from([0.0, 0.5]))
def test_cusum_is_the_textbook_tabular_cusum(seed, k, h, mode, restart) -> None:
    rng = np.random.default_rng(seed)
    data = rng.normal(0.0, 1.0, size=(600, 3))
    data[300:, 1] += 1.0
    data[200:, 2] -= np.linspace(0.0, 2.0, 400)  # a slow ramp: the in-control level is never relearned
    mean, std = np.array([0.1, -0.2, 0.0]), np.array([1.0, 0.9, 1.1])
    opts = {"k": k, "h": h, "mode": mode, "restart": restart * h}
    expected = [_textbook_cusum(data[:, j].tolist(), mean[j], std[j], **opts) for j in range(3)]
    many = CUSUM(mean=mean, std=std, **opts)
    steps = run(many, data, 1)
    assert [np.flatnonzero(steps[:, j]).tolist() for j in range(3)] == expected
    batched = CUSUM(mean=mean, std=std, **opts)
    run(batched, data, 37)
    assert batched.n_detections.tolist() == [len(e) for e in expected]
    for j in range(3):
        assert run_scalar(CUSUM(mean=mean[j], std=std[j], **opts), data[:, j].tolist()) == expected[j]


def test_cusum_is_not_page_hinkley() -> None:
    """CUSUM(k, h) used to give exactly the alarms of PageHinkley(delta=k, threshold=h). A slow ramp away from the
    reference: Page-Hinkley, which learns the stream's own mean, barely notices; CUSUM, which holds the stream to
    the reference, does."""
    rng = np.random.default_rng(8)
    data = rng.normal(size=(4000, 50)) + np.linspace(0.0, 1.5, 4000)[:, None]
    cusum = CUSUM(mean=np.zeros(50), std=np.ones(50), k=0.5, h=14)
    ph = PageHinkley(n_streams=50, delta=0.5, threshold=14)
    run(cusum, data, 100)
    run(ph, data, 100)
    assert (cusum.n_detections > 0).all()
    assert cusum.n_detections.tolist() != ph.n_detections.tolist()


def test_cusum_refuses_a_reference_without_spread() -> None:
    with pytest.raises(DataError, match=r"stream\(s\) \[1\] have no usable in-control mean/std"):
        CUSUM.from_reference(np.column_stack([np.arange(10.0), np.full(10, 3.0)]))
    with pytest.raises(DataError, match="different lengths"):
        CUSUM(mean=np.zeros(3), std=np.ones(4))
    with pytest.raises(DataError, match="at least 2 reference values"):
        CUSUM.from_reference(np.zeros((1, 3)))


# -- the scalar path and the vectorized path agree ------------------------------------------------------------


@pytest.mark.parametrize("cls", DETECTORS)
def test_scalar_path_equals_vectorized_path(cls) -> None:
    """One stream fed Python floats (plain-Python arithmetic) alarms at the same steps as the same stream fed
    one row at a time and in blocks through the vectorized path, and leaves the same state."""
    rng = np.random.default_rng(21)
    values = rng.normal(size=6000)
    values[2000:] += 1.5
    values[4000:] -= 3.0
    scalar = make(cls, 1)
    steps = run_scalar(scalar, values.tolist())
    rows = make(cls, 1)
    alarms = run(rows, values[:, None], 1)
    assert steps == np.flatnonzero(alarms[:, 0]).tolist()
    assert len(steps) >= 2
    blocks = make(cls, 1)
    run(blocks, values[:, None], 64)
    assert blocks.n_detections.tolist() == [len(steps)]
    # ADWIN's circular block store may start at another slot; compare what it holds
    names = ("width", "n_blocks", "cur_n", "estimation") if cls is ADWIN else cls._arrays
    for name in names:
        np.testing.assert_allclose(getattr(scalar, name), getattr(rows, name), rtol=1e-9, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("cls", DETECTORS)
def test_scalar_and_vectorized_updates_mix(cls) -> None:
    """Switching between Python numbers and arrays on one detector writes the scalar state back first."""
    values = np.random.default_rng(4).normal(size=3000)
    values[1500:] += 2.0
    mixed, reference = make(cls, 1), make(cls, 1)
    for lo in range(0, 3000, 500):
        chunk = values[lo : lo + 500]
        if (lo // 500) % 2:
            mixed.update(chunk[:, None])
        else:
            for value in chunk.tolist():
                mixed.update(value)
        reference.update(chunk[:, None])
    assert mixed.n_detections.tolist() == reference.n_detections.tolist() != [0]
    state = mixed.state_dict()
    assert type(mixed).from_state_dict(state).n_detections.tolist() == mixed.n_detections.tolist()


@pytest.mark.parametrize("cls", [PageHinkley, CUSUM, ADWIN])
@settings(max_examples=10)
@given(seed=st.integers(0, 2**32 - 1), block=st.sampled_from([7, 64, 200, 500]))
def test_batched_updates_equal_one_value_at_a_time(cls, seed, block) -> None:
    """The closed-form batch pass (with resets inside the batch) gives the step-by-step alarms exactly."""
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(500, 6))
    data[250:, :3] += rng.uniform(0.5, 3.0, size=3)
    kwargs = {"min_instances": 10} if cls is PageHinkley else {}
    one, many = make(cls, 6, **kwargs), make(cls, 6, **kwargs)
    step_alarms = run(one, data, 1)
    run(many, data, block)
    assert many.n_detections.tolist() == one.n_detections.tolist()
    assert step_alarms.sum(axis=0).tolist() == one.n_detections.tolist()
    for name in cls._arrays:
        np.testing.assert_allclose(getattr(many, name), getattr(one, name), rtol=1e-9, atol=1e-9)


# -- state, input checks --------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", DETECTORS)
def test_state_round_trip_continues_identically(cls, tmp_path) -> None:
    rng = np.random.default_rng(3)
    data = rng.normal(size=(1200, 8))
    data[800:, 2] += 2.0
    det = make(cls, 8)
    det.update(data[:600])
    path = tmp_path / "state.npz"
    np.savez(path, **{k: np.asarray(v) for k, v in det.state_dict().items()})
    with np.load(path, allow_pickle=False) as npz:
        state = {k: (npz[k].item() if npz[k].ndim == 0 else npz[k]) for k in npz.files}
    restored = cls.from_state_dict(state)
    det.update(data[600:])
    restored.update(data[600:])
    assert restored.n_detections.tolist() == det.n_detections.tolist()
    assert det.n_detections[2] >= 1


@pytest.mark.parametrize("cls", DETECTORS)
def test_bad_input(cls) -> None:
    det = make(cls, 3)
    with pytest.raises(DataError, match=r"x: expected shape \(3,\) or \(k, 3\), got \(4,\)"):
        det.update(np.zeros(4))
    with pytest.raises(DataError, match="non-finite"):
        det.update(np.array([0.0, np.nan, 1.0]))
    one = make(cls, 1)
    for bad in (float("nan"), float("inf"), np.float32("nan")):
        with pytest.raises(DataError, match="non-finite"):
            one.update(bad)
    with pytest.raises(DataError, match="expected a"):
        cls.from_state_dict({"type": "Other"})
    with pytest.raises(DataError, match="state lacks"):
        cls.from_state_dict({"type": cls.__name__, "n_streams": 3})
    if cls is not CUSUM:
        with pytest.raises(DataError, match="n_streams"):
            cls(n_streams=0)


def test_one_stream_drift_detected_reads_as_a_bool() -> None:
    det = PageHinkley()
    det.update(1.0)
    assert det.drift_detected.shape == (1,)
    assert not det.drift_detected
    for value in (1, True, np.float64(2.0), np.int64(3)):  # any real number takes the scalar path
        det.update(value)
    assert det.n_seen.tolist() == [5]


def test_adwin_window_shrinks_after_a_change() -> None:
    rng = np.random.default_rng(4)
    det = ADWIN(n_streams=2)
    det.update(rng.normal(size=(3000, 2)))
    assert det.width.tolist() == [3000, 3000]
    det.update(rng.normal([0.0, 3.0], size=(500, 2)))
    assert det.width[0] == 3500
    assert det.width[1] < 1000
    assert det.estimation[1] == pytest.approx(3.0, abs=0.3)


def test_adwin_scalar_path_over_a_long_stream_far_from_zero() -> None:
    """Past the block store's capacity (the oldest blocks leave) and far from zero (where running sums lose
    precision), one stream of Python floats alarms at the steps the vectorized path does and keeps its window."""
    rng = np.random.default_rng(8)
    values = 1e6 + rng.normal(size=40_000)
    values[12_000:] += 1.0
    values[30_000:] -= 2.0
    scalar, rows = ADWIN(), ADWIN()
    steps = run_scalar(scalar, values.tolist())
    alarms = run(rows, values[:, None], 1)
    assert steps == np.flatnonzero(alarms[:, 0]).tolist()
    assert len(steps) >= 2
    assert scalar.width.tolist() == rows.width.tolist()
    np.testing.assert_allclose(scalar.estimation, rows.estimation, rtol=1e-12)
    stable = ADWIN()
    assert run_scalar(stable, (1e6 + rng.normal(size=20_000)).tolist()) == []
    assert stable.width.tolist() == [8192]  # the store's capacity: the oldest blocks left
