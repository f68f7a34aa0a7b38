"""``goldwatch serve``: the sidecar that watches a live inference server and heals it without a human.

One process next to one inference server (the common pod), watching one or more models. For each it checks, on a
schedule and off the event loop, the served files against the served version's manifest, the live endpoint's
answers to the version's golden sets, the server's readiness, the version the server reports, and whether a
verified rollback target exists; other components report more evidence (resident-weight fingerprints from the
in-process agent). A pure policy turns evidence into decisions -- roll back through the registry (which re-verifies
the target), page through the alert manager (one incident per model and check class), resolve -- and a journal
records every decision and every incident's times (started, detected, acted on, recovered: TTD and TTR against the
RTO) before they take effect, so a restart loses nothing and finishes an interrupted rollback.

The modules, one responsibility each:

* :mod:`.evidence` -- :class:`Evidence`, the policy table (:class:`EvidenceKind`, :class:`EvidenceKinds`), and
  validation of reports from outside (:func:`parse_report`);
* :mod:`.policy` -- evidence + history -> :class:`Decision` s; pure, no I/O;
* :mod:`.checks` -- the scheduled checks (files, golden replay, readiness, version, rollback readiness);
* :mod:`.targets` -- where a model's truth comes from: the registry (rollback on) or a path + manifest (page only);
* :mod:`.journal` -- SQLite: decisions, check state, incidents with their times, rollbacks, pauses, checkpoints;
* :mod:`.scheduler` -- asyncio jobs with jitter and timeouts, one per kind and model, run on :mod:`.workers`
  (daemon threads: a hung check holds only its own);
* :mod:`.responder` -- carrying decisions out (incidents, pages, rollbacks, reloads); :mod:`.startup` -- resuming
  after a restart and ``--verify-first``; :mod:`.views` -- what ``/v1/status`` shows; :mod:`.context` -- a
  watched model's state;
* :mod:`.fleet` -- this pod in the registry: its heartbeat, and on a registry shared by a fleet (PostgreSQL) its
  pages through the fleet's incident book (one page for the fleet, one resolve when the last pod recovers);
* :mod:`.metrics` -- the Prometheus registry; :mod:`.api` -- the starlette routes; :mod:`.runner` -- uvicorn and
  signals; :mod:`.service` -- :class:`SidecarService`, which composes them;
* :mod:`.process` -- running ``goldwatch serve`` as a process (demo, tests, benchmark); :mod:`.demo` --
  ``goldwatch demo sidecar``.

Disaster recovery (:mod:`goldwatch.watchdog.recovery`, ``docs/recovery.md``) is carried by the same core: the
policy decides ``route`` (to a model's fallback or CPU variant, and back to the primary once it passes again), the
responder verifies the alternate with its golden sets before it calls the route hook, the ``device`` and
``standby`` checks watch a lost GPU and the degradation path, and ``POST /v1/models/{model}/route`` lets a person
move traffic. Training assets (``[[recovery.assets]]``) are watched by a built-in extension.

Extension points (see :mod:`.extensions` for the loader):

1. **External evidence.** ``POST /v1/models/{model}/evidence`` with the bearer token, or
   :meth:`SidecarService.submit_evidence` in-process (:meth:`~SidecarService.submit_evidence_threadsafe` from
   another thread), with::

       {"source": "agent:<host>:<pid>", "kind": "resident", "version": "<served version or null>",
        "interval_s": 30.0,
        "checks": [{"name": "resident:fingerprint", "status": "pass|fail|error|skip", "summary": "...",
                    "measured": {...}, "threshold": {...}, "details": {...}}]}

   ``kind`` must be a registered external kind (``resident`` is built in); check names are ``class:detail``;
   ``measured`` and ``threshold`` hold scalars (finite numbers, strings, booleans, null); the body is at most
   ``serve.max_body_bytes``; every problem is answered with a 400 naming its key path. A valid report is answered
   ``202`` at once -- after a failure that is news was journaled -- and decided on right after by a task of the
   model's own, in arrival order (:meth:`SidecarService.accept_evidence`): a reporter never waits for the rollback
   its report causes. ``?wait=true`` answers ``200`` with the decisions instead; ``429`` (``Retry-After``) when too
   many reports about the model wait. In-process, :meth:`SidecarService.submit_evidence` returns the decisions
   (after any action). A ``resident`` failure is
   treated like a file mismatch: roll back to the verified version (which replaces the memory) and page critical,
   with the tensor and block from ``details``. Evidence about a version that is no longer served is recorded and
   otherwise ignored. A source that reported with ``interval_s`` and then stays silent for more than
   ``resident_stale_factor`` (3) of its intervals raises a warning ("resident checks stale"), never a rollback; a
   restarted reporter (same ``agent:<host>`` lineage, new pid) supersedes the old one.

2. **More kinds, checks and routes.** An extension (``name`` + ``setup(service)``; ``[serve] extensions =
   ["module:attribute"]`` or ``SidecarService(..., extensions=[...])``) can register a kind of evidence with its
   own policy row (:meth:`~SidecarService.register_kind`; e.g. drift: severity ``warning``, ``consecutive`` windows
   before a page, never a rollback), schedule checks of it (:meth:`~SidecarService.add_check`), mount starlette
   routes (:meth:`~SidecarService.add_routes`, calling :meth:`~SidecarService.authorize` where they change
   state), keep durable state in the journal (``service.journal.put_checkpoint``) and run async start/stop hooks.
   Nothing in the core changes.

Importing this package imports neither starlette nor uvicorn (only :mod:`.api` and :mod:`.runner` do).
"""

from goldwatch.watchdog.sidecar.checks import RunRequest, RunResult, ScheduledCheck
from goldwatch.watchdog.sidecar.evidence import (
    BUILTIN_KINDS,
    Evidence,
    EvidenceKind,
    EvidenceKinds,
    ExternalReport,
    parse_report,
)
from goldwatch.watchdog.sidecar.extensions import SidecarExtension, load_extension
from goldwatch.watchdog.sidecar.journal import Journal
from goldwatch.watchdog.sidecar.policy import Decision, ModelView, Rules, decide, staleness
from goldwatch.watchdog.sidecar.service import SidecarService, UnknownModelError

__all__ = [
    "BUILTIN_KINDS",
    "Decision",
    "Evidence",
    "EvidenceKind",
    "EvidenceKinds",
    "ExternalReport",
    "Journal",
    "ModelView",
    "Rules",
    "RunRequest",
    "RunResult",
    "ScheduledCheck",
    "SidecarExtension",
    "SidecarService",
    "UnknownModelError",
    "decide",
    "load_extension",
    "parse_report",
    "staleness",
]
