"""Streaming detectors over the per-window evidence of every feature: drift that no single window proves.

A window test answers "is this window different?"; a small shift that persists gives p-values that are small but
not small enough, window after window. Each tested window turns every feature's p-value into a z-score,
``z = Phi^-1(1 - p)`` -- standard normal when nothing drifted, whatever the test and the window size, so the
in-control mean (0) and standard deviation (1) are known without learning them from the stream -- and feeds it to
one streaming detector per feature (:class:`~goldwatch.detectors.CUSUM`, upper side, by default; or
:class:`~goldwatch.detectors.PageHinkley`). A feature whose effect is below the effect-size floor contributes no
evidence of drift (its z is capped at 0), so windows of a million rows cannot add up harmless differences.

The CUSUM restarts at ``h / 2`` after an alarm (Lucas and Crosier's fast initial response), so a shift that
persists signals again within a few windows; a feature stays *latched* from its alarm until its sum has decayed
below ``h / 4`` -- the drift is over -- which is what keeps a page open while a slow drift lasts.

The detector's state is plain arrays (:meth:`TrendTracker.state_dict`), checkpointed with the rest of the model's
state, so a restart continues the sums where they stopped.

>>> import numpy as np
>>> t = TrendTracker(3)
>>> p = np.array([0.5, 0.02, 0.5])              # feature 1: small p-values, window after window
>>> effect = np.array([0.01, 0.06, 0.01])
>>> [int(t.update(p, effect, min_effect=0.05).sum()) for _ in range(10)]  # z - k = 1.55 a window; h = 14
[0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
>>> t.latched.tolist(), t.detector.s_up.tolist()                          # restarted at h / 2
([False, True, False], [0.0, 7.0, 0.0])
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy.special import ndtri

from goldwatch.detectors.streaming import CUSUM, PageHinkley

__all__ = ["TrendKind", "TrendTracker"]

TrendKind = Literal["cusum", "page-hinkley"]
_Z_CAP = 8.0  # p-values below ~6e-16 all read as z = 8: one tiny p-value must not outweigh many windows


class TrendTracker:
    """One streaming detector per feature over per-window z-scores."""

    def __init__(self, n_features: int, *, kind: TrendKind = "cusum", h: float = 14.0, k: float = 0.5) -> None:
        self.kind = kind
        self.h, self.k = float(h), float(k)
        self.n_features = int(n_features)
        self.detector: CUSUM | PageHinkley | None = None
        if self.n_features:
            self.detector = self._new_detector()
        self.latched = np.zeros(self.n_features, dtype=bool)

    def _new_detector(self) -> CUSUM | PageHinkley:
        if self.kind == "cusum":
            return CUSUM(mean=np.zeros(self.n_features), std=np.ones(self.n_features), k=self.k, h=self.h,
                         mode="up", restart=self.h / 2)
        return PageHinkley(n_streams=self.n_features, min_instances=10, delta=self.k, threshold=self.h)

    def update(self, pvalue: np.ndarray, effect: np.ndarray, *, min_effect: float | None,
               drifted: np.ndarray | None = None) -> np.ndarray:
        """One tested window: raw p-values and effects per feature (NaN p: not tested, no evidence). Returns the
        features that alarmed at this window. ``drifted``: features whose drift the window tests already page
        (K windows in a row); their sums start again from 0, so that when that drift ends nothing remains latched
        and the page recovers with the first clean window."""
        if self.detector is None:
            return np.zeros(0, dtype=bool)
        p = np.asarray(pvalue, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            z = np.clip(ndtri(1.0 - np.clip(p, 0.0, 1.0)), -_Z_CAP, _Z_CAP)
        if min_effect is not None:
            z = np.where(np.asarray(effect) < min_effect, np.minimum(z, 0.0), z)
        z = np.where(np.isfinite(z), z, 0.0)
        self.detector.update(z)
        alarm = np.asarray(self.detector.drift_detected, dtype=bool).copy()
        if drifted is not None and np.any(drifted):
            self.detector.reset(np.asarray(drifted, dtype=bool))
            alarm &= ~np.asarray(drifted, dtype=bool)
            self.latched &= ~np.asarray(drifted, dtype=bool)
        self.latched |= alarm
        if isinstance(self.detector, CUSUM):
            self.latched &= alarm | (self.detector.s_up >= self.h / 4)
        else:
            self.latched = alarm
        return alarm

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "h": self.h, "k": self.k, "n_features": self.n_features,
                "latched": self.latched.copy(),
                "detector": None if self.detector is None else self.detector.state_dict()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> TrendTracker:
        obj = cls(int(state["n_features"]), kind=state["kind"], h=float(state["h"]), k=float(state["k"]))
        obj.latched = np.asarray(state["latched"], dtype=bool).reshape(obj.n_features)
        if state.get("detector") is not None:
            det_cls = CUSUM if obj.kind == "cusum" else PageHinkley
            obj.detector = det_cls.from_state_dict(dict(state["detector"]))
        return obj
