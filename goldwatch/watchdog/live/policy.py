"""When live drift pages, and when it recovers: a pure function of the previous state and one window.

* **Drift** pages a warning when the window tests found drift in ``required`` consecutive tested windows (default
  2: one unlucky window never wakes anyone; at most one page in 1,000 stable windows of 100 features at the
  defaults, measured), or while a streaming detector holds a feature latched (a drift too small for any one
  window). A tested window with no drift and nothing latched recovers. It never rolls back: the world changed, or
  upstream did; the model did not.
* **Data quality** pages an error in the window where a rate breaks (a feature suddenly 30% NaN: upstream broke,
  and waiting a window only lets more bad data through); a clean tested window recovers.
* A window that was not tested (too small, no reference) changes nothing.

>>> s = PolicyState(consecutive=0, paging=False, quality_paging=False, windows=0)
>>> s = next_state(s, tested=True, drifted=True, latched=False, quality_failed=False, required=2)
>>> s.consecutive, s.paging
(1, False)
>>> s = next_state(s, tested=True, drifted=True, latched=False, quality_failed=False, required=2)
>>> s.consecutive, s.paging
(2, True)
>>> s = next_state(s, tested=False, drifted=False, latched=False, quality_failed=False, required=2)
>>> s.paging, next_state(s, tested=True, drifted=False, latched=False, quality_failed=False, required=2).paging
(True, False)
"""

from __future__ import annotations

from goldwatch.watchdog.live.results import PolicyState

__all__ = ["PolicyState", "next_state"]


def next_state(prev: PolicyState, *, tested: bool, drifted: bool, latched: bool, quality_failed: bool,
               required: int) -> PolicyState:
    """The state after one closed window."""
    if not tested:
        return PolicyState(consecutive=prev.consecutive, paging=prev.paging, quality_paging=prev.quality_paging,
                           windows=prev.windows + 1, required=required)
    consecutive = prev.consecutive + 1 if drifted else 0
    return PolicyState(consecutive=consecutive, paging=consecutive >= required or latched,
                       quality_paging=quality_failed, windows=prev.windows + 1, required=required)
