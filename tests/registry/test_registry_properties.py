"""Property: any sequence of registry operations keeps the audit trail, the states and the pointer consistent."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from goldwatch.errors import RegistryError
from goldwatch.watchdog.registry import Registry, Serving, make_pointer
from goldwatch.watchdog.registry.models import TRANSITIONS
from tests.registry.registry_helpers import write_weights


class RegistryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="gw-reg-prop-"))
        self.reg = Registry.open(self.tmp / "reg")
        self.reg.attach("m", Serving(make_pointer("current-link", self.tmp / "serve")))
        self.count = 0

    def teardown(self) -> None:
        self.reg.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _version(self, index: int) -> str | None:
        return str(index % self.count + 1) if self.count else None

    def _states(self) -> dict[str, str]:
        return {v.version: v.state for v in self.reg.list("m")} if self.count else {}

    def _attempt(self, op, *args, **kwargs) -> None:
        before = (self._states(), self.reg.serving_target("m") if self.count else None)
        try:
            op(*args, **kwargs)
        except RegistryError:
            # a refused operation changes nothing
            assert (self._states(), self.reg.serving_target("m") if self.count else None) == before

    @rule(seed=st.integers(0, 3))
    def add(self, seed: int) -> None:
        self.count += 1
        self.reg.add("m", write_weights(self.tmp / "src" / str(self.count), seed, n=4))

    @rule(index=st.integers(0, 20), serve=st.booleans())
    def promote(self, index: int, serve: bool) -> None:
        if (v := self._version(index)) is not None:
            self._attempt(self.reg.promote, "m", v, reason="p", serve=serve)

    @rule(index=st.integers(0, 20))
    def quarantine(self, index: int) -> None:
        if (v := self._version(index)) is not None:
            self._attempt(self.reg.quarantine, "m", v, reason="q")

    @rule(index=st.integers(0, 20))
    def retire(self, index: int) -> None:
        if (v := self._version(index)) is not None:
            self._attempt(self.reg.retire, "m", v, reason="r")

    @rule(keep_current=st.booleans())
    def rollback(self, keep_current: bool) -> None:
        if self.count:
            result = self.reg.rollback("m", reason="rb", quarantine_current=not keep_current)
            if result.switched:
                assert self.reg.get("m", result.to_version).state == "known-good"
                assert result.to_version != result.from_version

    @invariant()
    def trail_replays_to_the_states(self) -> None:
        if not self.count:
            return
        replayed: dict[str, str] = {}
        for e in self.reg.history("m"):
            if e.to_state is None:
                continue
            assert replayed.get(e.version) == e.from_state
            if e.from_state is not None:
                assert e.to_state in TRANSITIONS[e.from_state]
            replayed[e.version] = e.to_state
        assert replayed == self._states()

    @invariant()
    def pointer_agrees_with_the_database(self) -> None:
        served = self.reg.serving_target("m") if self.count else None
        state = self.reg.serving_for("m").pointer.read()
        if served is None:
            assert state is None
        else:
            assert str(state.source) == served[1]
            assert self.reg.get("m", served[0]).state in ("known-good", "quarantined")


RegistryMachine.TestCase.settings = settings(max_examples=15, stateful_step_count=12, deadline=None)
TestRegistryMachine = RegistryMachine.TestCase
