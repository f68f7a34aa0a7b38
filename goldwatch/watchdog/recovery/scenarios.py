"""The five disaster scenarios of AI serving and training, as data: what signals each, what goldwatch does about it,
and which incident classes belong to it (so every page links its scenario's runbook).

Nothing here imports anything heavy: the sidecar, the runbook generator and the drill all read this table.

>>> scenario_for_class("integrity").slug, scenario_for_class("device").number, scenario_for_class("version")
('model-corrupted', '4', None)
>>> runbook_link("https://runbooks.example/goldwatch", "fraud", "server")
'https://runbooks.example/goldwatch#fraud-server-unreachable'
>>> runbook_link("https://wiki.example/{model}/{scenario}.md", "fraud", "golden")
'https://wiki.example/fraud/3-model-wrong.md'
>>> runbook_link("https://runbooks.example/goldwatch#old", "fraud", "flap-guard")
'https://runbooks.example/goldwatch#fraud'
"""

from __future__ import annotations

import dataclasses
from typing import Literal

__all__ = ["SCENARIOS", "Scenario", "anchor", "runbook_link", "scenario", "scenario_for_class"]


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One disaster scenario. ``classes``: the incident classes its pages open (one incident per subject and
    class); ``domain``: serving (RTO) or training (RPO)."""

    number: str
    slug: str
    title: str
    signal: str
    action: str
    classes: tuple[str, ...]
    domain: Literal["serving", "training"]

    @property
    def stem(self) -> str:
        """The runbook's file name without ``.md``: ``2-model-corrupted``."""
        return f"{self.number}-{self.slug}"


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("1", "server-unreachable", "The model server or provider is unreachable",
             "readiness fails past the grace period (the code is fine, the model is gone)",
             "page; route traffic to the fallback once its golden sets pass; route back when the primary passes "
             "again; never a rollback", ("server",), "serving"),
    Scenario("2", "model-corrupted", "The model is corrupted (files or resident weights)",
             "a digest or fingerprint mismatch in the served files or the weights in memory",
             "verified rollback to the newest known-good version that re-verifies; page (critical)",
             ("integrity", "resident"), "serving"),
    Scenario("3", "model-wrong", "The model answers wrong with intact bytes",
             "golden replay outside the calibrated tolerances, confirmed by one immediate re-run",
             "rollback; if no known-good version is left, route to the verified fallback and page that there is "
             "none", ("golden",), "serving"),
    Scenario("4", "gpu-lost", "GPU capacity is gone",
             "the server reports its device lost (or answers with device errors)",
             "route to the CPU variant the cross-device golden set proves (never an unproven one); route back when "
             "the GPU returns", ("device",), "serving"),
    Scenario("5", "training-data-lost", "Training data or checkpoints are lost or corrupted",
             "a backup fails its restore-and-verify, the live asset fails its manifest, or the newest verified "
             "restore point is older than the RPO",
             "page, with the newest verified restore point and the RPO it gives", ("backup", "rpo", "asset"),
             "training"),
)
_BY_CLASS = {cls: s for s in SCENARIOS for cls in s.classes}


def scenario(number_or_slug: str) -> Scenario:
    """The scenario named by its number (``"2"``) or slug (``"model-corrupted"``); KeyError if none."""
    for s in SCENARIOS:
        if number_or_slug in (s.number, s.slug):
            return s
    raise KeyError(number_or_slug)


def scenario_for_class(check_class: str) -> Scenario | None:
    """The scenario an incident class belongs to (None: version skew, flap guard, stale sources, standby...)."""
    return _BY_CLASS.get(check_class)


def anchor(subject: str, found: Scenario | None) -> str:
    """The anchor of a subject's scenario section in the runbook index (the subject's own section if None)."""
    return subject if found is None else f"{subject}-{found.slug}"


def runbook_link(base: str, subject: str, check_class: str) -> str:
    """Where the page of (subject, class) links: ``base`` with ``{model}`` / ``{scenario}`` filled in when it has
    them (one file per scenario), else ``base#<subject>-<slug>`` (the generated index, one anchor per scenario)."""
    found = scenario_for_class(check_class)
    if "{model}" in base or "{scenario}" in base:
        return base.replace("{model}", subject).replace("{scenario}", found.stem if found else "index")
    return f"{base.split('#', 1)[0]}#{anchor(subject, found)}"
