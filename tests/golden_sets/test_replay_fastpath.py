"""The per-replay caches and shortcuts give exactly the checks the plain computation gives."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goldwatch.errors import GoldenSetError
from goldwatch.examples import ExampleArtifacts
from goldwatch.golden_sets import GoldenSet, compare, replay
from goldwatch.golden_sets.compare import _topk_contained, compare_output
from goldwatch.golden_sets.format import Tolerance
from goldwatch.runtimes import load_model


def _fresh(golden: GoldenSet) -> GoldenSet:
    """The same golden set with new arrays: nothing cached for it yet."""
    return GoldenSet(
        **{
            **golden.__dict__,
            "inputs": {k: v.copy() for k, v in golden.inputs.items()},
            "expected": {k: v.copy() for k, v in golden.expected.items()},
        }
    )


def _perturbed(golden: GoldenSet, scale: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {k: v + rng.normal(scale=scale, size=v.shape).astype(v.dtype) for k, v in golden.expected.items()}


def _compare(golden: GoldenSet, outputs: dict[str, np.ndarray]) -> list[str]:
    checks = []
    for name, expected in golden.expected.items():
        checks += compare_output(
            name, outputs[name], expected, tolerance=golden.tolerances[name], role=golden.roles.get(name, "tensor"),
            labels=golden.labels,
        )
    return [repr(c) for c in checks]


@pytest.mark.parametrize("scale", [0.0, 1e-7, 1e-2])
def test_cached_view_gives_the_checks_of_a_fresh_golden_set(tabular_golden: GoldenSet, scale: float) -> None:
    outputs = _perturbed(tabular_golden, scale) if scale else {k: v.copy() for k, v in tabular_golden.expected.items()}
    first = _compare(tabular_golden, outputs)
    cached = _compare(tabular_golden, outputs)  # second call: the expected outputs' view comes from the cache
    fresh = _compare(_fresh(tabular_golden), outputs)
    writable = {k: v.copy() for k, v in tabular_golden.expected.items()}  # writable arrays are never cached
    uncached = _compare(GoldenSet(**{**tabular_golden.__dict__, "expected": writable}), outputs)
    assert first == cached == fresh == uncached


def test_replay_twice_matches_replay_of_a_fresh_golden_set(
    tabular: ExampleArtifacts, tabular_golden: GoldenSet
) -> None:
    assert tabular.onnx is not None
    runtime = load_model(tabular.onnx)
    reports = [replay(runtime, g, batch_size=64) for g in (tabular_golden, tabular_golden, _fresh(tabular_golden))]
    assert reports[0].ok
    assert [repr(c) for c in reports[0].checks] == [repr(c) for c in reports[1].checks]
    assert [repr(c) for c in reports[0].checks] == [repr(c) for c in reports[2].checks]


def _all_roles(actual: np.ndarray, expected: np.ndarray, tol: Tolerance, labels: np.ndarray) -> list[str]:
    return [
        repr(c)
        for role in ("scores", "embedding", "tensor")
        for c in compare_output("y", actual, expected, tolerance=tol, role=role, labels=labels)
    ]


def _full_computation(monkeypatch: pytest.MonkeyPatch) -> None:
    """No shortcut at all: no bit-identical shortcut, no cached checks, no error or top-1 bounds."""
    monkeypatch.setattr(compare, "_bit_identical", lambda a, e: False)
    monkeypatch.setattr(compare, "_SHORTCUTS", False)


@pytest.mark.parametrize("case", ["identical", "ties", "nan", "noise", "tiny_noise", "flips"])
def test_shortcuts_match_the_full_computation(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    expected = rng.integers(-2, 3, size=(64, 7)).astype(np.float32)  # many ties, at the top and at the k-th place
    expected[:32] += rng.normal(scale=1e-3, size=(32, 7)).astype(np.float32)  # and margins of every size
    expected.flags.writeable = False
    actual = expected.copy()
    if case == "ties":
        actual[expected == 0] = -0.0  # equal values, different bits: the full computation runs
    elif case == "nan":
        actual[3, 2] = np.nan
    elif case == "noise":
        actual += rng.normal(scale=1e-3, size=actual.shape).astype(np.float32)
    elif case == "tiny_noise":  # within tolerance: the top-1 bound decides most samples, ranking the rest
        actual += rng.normal(scale=2e-6, size=actual.shape).astype(np.float32)
    elif case == "flips":  # within tolerance, yet near-ties swap places
        actual[expected == expected.max(axis=1, keepdims=True)] -= np.float32(4e-6)
    labels = rng.integers(0, 7, size=64)
    labels.flags.writeable = False
    tol = Tolerance(1e-5, 1e-5, {"floor_abs": 1e-6})
    shortcut = _all_roles(actual, expected, tol, labels)
    again = _all_roles(actual, expected, tol, labels)  # cached checks for bit-identical answers
    _full_computation(monkeypatch)
    assert _all_roles(actual, expected, tol, labels) == shortcut == again


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    classes=st.integers(2, 9),
    noise=st.sampled_from([0.0, 1e-9, 1e-7, 1e-6, 1e-5, 1e-3]),
    levels=st.integers(2, 6),
    dtype=st.sampled_from(["float32", "float64", "int32"]),
)
def test_shortcuts_match_the_full_computation_on_random_scores(
    seed: int, classes: int, noise: float, levels: int, dtype: str
) -> None:
    """Coarse integer scores (ties everywhere) plus noise around the tolerance: every number must agree."""
    rng = np.random.default_rng(seed)
    expected = (rng.integers(0, levels, size=(40, classes)) + rng.normal(scale=1e-5, size=(40, classes)) *
                rng.integers(0, 2, size=(40, 1))).astype(dtype)
    expected.flags.writeable = False
    if dtype == "int32":  # integer answers: an "error" is a whole unit
        actual = expected + (rng.random(expected.shape) < noise * 1e4).astype(np.int32)
    else:
        actual = (expected + rng.normal(scale=noise, size=expected.shape)).astype(dtype) if noise else expected.copy()
    labels = rng.integers(0, classes, size=40)
    tol = Tolerance(1e-5, 1e-4, {"floor_abs": 1e-6})
    shortcut = _all_roles(actual, expected, tol, labels)
    with pytest.MonkeyPatch.context() as mp:
        _full_computation(mp)
        assert _all_roles(actual, expected, tol, labels) == shortcut


def test_topk_by_counting_matches_argpartition() -> None:
    rng = np.random.default_rng(3)
    for k in (2, 3, 5):
        scores = rng.integers(0, 4, size=(500, 8)).astype(np.float64)  # ties straddling the k-th place are common
        scores[::7, 1] = -np.inf
        top1 = scores.argmax(axis=1)
        reference = (np.argpartition(-scores, k - 1, axis=1)[:, :k] == top1[:, None]).any(axis=1)
        np.testing.assert_array_equal(_topk_contained(scores, top1, k), reference)


def test_compatibility_cache_still_rejects_a_changed_golden_set(
    tabular: ExampleArtifacts, tabular_golden: GoldenSet
) -> None:
    assert tabular.onnx is not None
    runtime = load_model(tabular.onnx)
    assert replay(runtime, tabular_golden).ok  # caches the compatible pair
    as64 = GoldenSet(**{**tabular_golden.__dict__, "inputs": {"x": tabular_golden.inputs["x"].astype(np.float64)}})
    with pytest.raises(GoldenSetError, match="expects float32, the golden set holds float64"):
        replay(runtime, as64)
    with pytest.raises(GoldenSetError, match="expects float32, the golden set holds float64"):
        replay(runtime, as64)  # a failure is never cached as compatible


def test_cached_checks_never_outlive_labels_that_can_change() -> None:
    """A read-only view of a writeable table is not immutable: nothing derived from it may be kept."""
    expected = np.array([[2.0, 0.0], [0.0, 3.0]], np.float32)
    expected.flags.writeable = False
    table = np.array([[0, 9], [1, 9]])
    labels = table[:, 0]
    labels.flags.writeable = False
    tol = Tolerance(1e-5, 1e-5, {"floor_abs": 1e-6})

    def accuracy() -> object:
        checks = compare_output("y", expected.copy(), expected, tolerance=tol, role="scores", labels=labels)
        return next(c.measured["value"] for c in checks if c.name.endswith("label_accuracy"))

    assert accuracy() == 1.0
    table[:, 0] = [1, 0]
    assert accuracy() == 0.0


def test_golden_sets_hold_their_answers_immutable(tabular_golden: GoldenSet) -> None:
    from goldwatch.golden_sets.format import immutable

    table = np.array([[0, 7], [1, 7], [2, 7]])
    view_labels = table[:, 0]
    golden = GoldenSet(**{**tabular_golden.__dict__, "labels": view_labels,
                          "inputs": {k: v[:3] for k, v in tabular_golden.inputs.items()},
                          "expected": {k: v[:3] for k, v in tabular_golden.expected.items()}})
    assert golden.labels is not None
    assert immutable(golden.labels)
    assert all(immutable(v) for v in golden.expected.values())
    table[:, 0] = 5  # the caller's table changes; the golden set's labels do not
    assert golden.labels.tolist() == [0, 1, 2]
    assert all(immutable(v) for v in tabular_golden.expected.values())  # loaded from disk: immutable too


@pytest.mark.parametrize("role", ["scores", "embedding"])
def test_column_major_answers_give_the_numbers_of_row_major_ones(role: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    expected = rng.normal(size=(40, 7))
    expected.flags.writeable = False
    actual = np.asfortranarray(expected + rng.normal(scale=1e-9, size=expected.shape))
    tol = Tolerance(1e-6, 1e-6, {"floor_abs": 1e-7})

    def run(answers: np.ndarray) -> list[str]:
        return [repr(c) for c in compare_output("y", answers, expected, tolerance=tol, role=role)]

    fortran = run(actual)
    assert fortran == run(np.ascontiguousarray(actual))
    assert run(np.asfortranarray(expected)) == run(expected.copy())  # identical answers, either layout
    _full_computation(monkeypatch)
    assert run(actual) == fortran


def test_nan_margins_are_counted_alike_in_the_counts_and_the_fraction() -> None:
    expected = np.array([[np.nan, 1.0, 2.0], [0.0, 5.0, 1.0]])
    expected.flags.writeable = False
    tol = Tolerance(1e-5, 1e-5, {"floor_abs": 1e-6})
    checks = compare_output("y", expected.copy(), expected, tolerance=tol, role="scores", drift_alpha=None)
    top1 = next(c for c in checks if c.name.endswith("top1_agreement"))
    assert top1.details["samples"] == 2
    assert (top1.measured["value"], top1.status) == (1.0, "pass")  # a NaN is never the best class, on either side
    moved = expected.copy()
    moved[0] = [np.nan, 3.0, 2.0]  # the best finite class changed
    checks = compare_output("y", moved, expected, tolerance=tol, role="scores", drift_alpha=None)
    top1 = next(c for c in checks if c.name.endswith("top1_agreement"))
    assert (top1.measured["value"], top1.details["samples"], top1.details["changed_samples"]) == (0.5, 2, 1)
