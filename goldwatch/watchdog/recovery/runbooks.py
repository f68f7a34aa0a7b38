"""Runbooks generated from the config: one Markdown page per scenario and watched model (or asset), and an index
holding them all, each under the anchor its pages link to (``alerts.runbook_url#<subject>-<scenario>``).

Each says how to recognise the scenario (the page and the metrics), what goldwatch already did about it *with this
configuration* (a model without a fallback gets a page, not a degradation, and its runbook says so), the exact
commands to check and to undo, and whom to escalate to.

>>> from goldwatch.config import parse_config
>>> cfg = parse_config('[[serve.watch]]\\nname = "fraud"\\nurl = "http://127.0.0.1:8080/v2/models/fraud"\\n'
...                    'serving_dir = "/models/fraud"\\n')
>>> books = runbooks(cfg)
>>> [(b.subject, b.scenario.number, b.anchor) for b in books][:2]
[('fraud', '1', 'fraud-server-unreachable'), ('fraud', '2', 'fraud-model-corrupted')]
>>> "No degradation path is configured" in books[0].text
True
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from pathlib import Path

from goldwatch.config import AssetConfig, GoldwatchConfig, ServeWatchConfig
from goldwatch.errors import InvalidInputError
from goldwatch.watchdog.recovery.scenarios import SCENARIOS, Scenario, anchor, scenario

__all__ = ["Runbook", "runbooks", "write_runbooks"]


@dataclasses.dataclass(frozen=True)
class Runbook:
    """One scenario's runbook for one subject (a watched model or an asset)."""

    subject: str
    scenario: Scenario
    anchor: str
    text: str

    @property
    def path(self) -> str:
        """Where it is written, relative to the runbook folder: ``<subject>/<n>-<slug>.md``."""
        return f"{self.subject}/{self.scenario.stem}.md"


class _Ctx:
    def __init__(self, config: GoldwatchConfig, config_path: str | None) -> None:
        self.config = config
        serve = config.serve
        host = "127.0.0.1" if serve.host in ("0.0.0.0", "::") else serve.host
        self.sidecar = (config.drill.sidecar_url or f"http://{host}:{serve.port}").rstrip("/")
        self.gw = f"goldwatch --config {shlex.quote(config_path)}" if config_path else "goldwatch"
        self.token = f"${serve.token_env or 'GOLDWATCH_SERVE_TOKEN'}"
        self.registry = str(config.registry.root)

    def post(self, path: str, body: str) -> str:
        return (f"curl -s -X POST -H \"Authorization: Bearer {self.token}\" -H 'Content-Type: application/json' "
                f"{self.sidecar}{path} -d '{body}'")

    def escalation(self, own: str | None) -> str:
        return own or self.config.recovery.escalation or \
            "nobody is named: set escalation for this model (or [recovery] escalation) in goldwatch.toml"


def _section(title: str, lines: list[str]) -> list[str]:
    return ["", f"### {title}", "", *lines]


def _code(*commands: str) -> list[str]:
    return ["```bash", *commands, "```"]


def _head(subject: str, s: Scenario) -> list[str]:
    return [f'<a id="{anchor(subject, s)}"></a>', "", f"## {s.number}. {s.title}: `{subject}`", "",
            f"*Signal*: {s.signal}. *goldwatch's action*: {s.action}."]


def _model_base(c: _Ctx, w: ServeWatchConfig) -> tuple[list[str], list[str]]:
    """Checks every model runbook shares, and the undo commands of traffic routing."""
    check = [f"{c.gw} status --url {c.sidecar}",
             f"curl -s '{c.sidecar}/v1/incidents?model={w.name}&state=open'",
             f"curl -s '{c.sidecar}/v1/journal?model={w.name}' | tail -c 4000"]
    route = []
    if w.route is not None:
        route = [c.post(f"/v1/models/{w.name}/route", '{"route": "primary", "reason": "the primary is back"}')]
    return check, route


def _metrics(c: _Ctx, subject: str, names: str) -> str:
    return f"curl -s {c.sidecar}/metrics | grep -E '{names}' | grep '\"{subject}\"'"


def _server(c: _Ctx, w: ServeWatchConfig) -> list[str]:
    s = scenario("1")
    check, route = _model_base(c, w)
    base = w.url.split("/v2/models/")[0]
    text = _head(w.name, s)
    text += _section("How to recognise it", [
        f"- Page `goldwatch/{w.name}/server` (error): `{w.name}: server check failed: server:ready: ... (not ready)`; "
        "its summary says what was done about it.",
        f"- Metrics: `goldwatch_model_healthy{{model=\"{w.name}\"}} == 0`, "
        f"`goldwatch_check_runs_total{{model=\"{w.name}\",check=\"readiness\",status=\"fail\"}}` rising"
        + (f", `goldwatch_degraded{{model=\"{w.name}\"}} == 1` once traffic is on the fallback." if w.fallback
           else "."),
    ])
    did = [f"- It waited `server_down_grace_s` = {w.server_down_grace_s:g} s (a pod being deleted stops its server "
           "first: that must not page), then paged (error)."]
    if w.fallback is not None and w.route is not None:
        did += [f"- It replayed the fallback's golden sets ({', '.join(f'`{g}`' for g in w.fallback.golden)}) against "
                f"`{w.fallback.url}` and, only when they passed, told the gateway to send `{w.name}`'s traffic there "
                f"({_route_how(w)}). A fallback that fails its golden sets is never routed to: the page says so.",
                "- It never rolled back: the model is fine, its server is gone.",
                f"- It keeps checking the primary; once readiness, the device, the version and the golden replay have "
                f"all passed for {w.route.route_back_after_s:g} s, it routes traffic back and resolves the incident "
                "(time in degraded mode: `goldwatch_degraded_seconds_total`)."]
    else:
        did += ["- No degradation path is configured: goldwatch pages only (never a rollback). Add "
                "`[serve.watch.fallback]` and `[serve.watch.route]` to serve a verified fallback meanwhile."]
    text += _section("What goldwatch already did", did)
    text += _section("Check", _code(*check, f"curl -s -o /dev/null -w '%{{http_code}}\\n' {base}/v2/health/ready",
                                    _metrics(c, w.name, "goldwatch_(degraded|model_healthy)")))
    undo = ["Bring the server back (restart the pod or the process, scale the deployment up, or fix the provider); "
            "goldwatch routes traffic back by itself." if w.fallback else
            "Bring the server back (restart the pod or the process, scale the deployment up, or fix the provider)."]
    undo_cmds = [*route, c.post(f"/v1/models/{w.name}/pause", '{"reason": "planned work", "for_s": 3600}')]
    text += _section("Undo / recover", [*undo, "", *_code(*undo_cmds)])
    return text


def _route_how(w: ServeWatchConfig) -> str:
    assert w.route is not None
    if w.route.kind == "http":
        return f"`POST {w.route.url}` with the model, the route and the URL"
    return f"the command `{' '.join(w.route.command or [])}`"


def _corrupted(c: _Ctx, w: ServeWatchConfig) -> list[str]:
    s = scenario("2")
    check, route = _model_base(c, w)
    text = _head(w.name, s)
    text += _section("How to recognise it", [
        f"- Page `goldwatch/{w.name}/integrity` (critical): the file, tensor and 1 MiB block whose bytes differ from "
        f"the manifest; or `goldwatch/{w.name}/resident` (critical) from the in-process agent: the weights in memory.",
        f"- Metrics: `goldwatch_rollbacks_total{{model=\"{w.name}\"}}` increases; "
        f"`goldwatch_model_healthy{{model=\"{w.name}\"}} == 0` until the rolled-back version verifies.",
    ])
    if w.mode == "observe" or not w.uses_registry:
        did = ["- It paged and did nothing else: this model is in observe mode, or watched without a registry."]
    else:
        did = ["- It rolled back to the newest known-good version whose files re-verify against their manifest "
               "(a corrupted backup is quarantined, never served), quarantined the corrupted version, and told the "
               f"server to reload (`reload = \"{w.reload}\"`); the page says `rolled back {w.name} A -> B in N s`.",
               "- It re-checked what is served (SHA-256 and golden replay) and resolved the incident when every "
               "check passed; the incident holds its TTD and TTR against the RTO "
               f"({w.rto_seconds or c.config.alerts.rto_seconds:g} s).",
               f"- It stops after {w.max_rollbacks_per_hour} automatic rollback(s) an hour (the flap guard) and pages "
               "that it stopped."]
        if w.fallback is not None:
            did.append("- Had no verified known-good version been left, it would have routed traffic to the verified "
                       "fallback and said so in the page.")
    text += _section("What goldwatch already did", did)
    reg = f"{c.gw} registry --root {shlex.quote(c.registry)}"
    text += _section("Check", _code(*check, f"{reg} list {w.model_in_registry}",
                                    f"{reg} show {w.model_in_registry} VERSION   # the audit trail of one version"))
    serving = f" --serving-dir {shlex.quote(str(w.serving_dir))}" if w.serving_dir else ""
    text += _section("Undo / recover", [
        "A quarantined version never serves again: its bytes were proven wrong. Find out why (storage, a bad copy, "
        "tampering) before anything else. To serve those bytes again, add them as a new version and promote it:", "",
        *_code(f"{reg} add {w.model_in_registry} PATH --golden GOLDEN_SET",
               f"{reg}{serving} promote {w.model_in_registry} NEW_VERSION --reason \"why it is safe again\"",
               c.post(f"/v1/models/{w.name}/rollback", '{"reason": "a person decided"}') + "   # a manual rollback",
               *route)])
    return text


def _wrong(c: _Ctx, w: ServeWatchConfig) -> list[str]:
    s = scenario("3")
    check, route = _model_base(c, w)
    replay = (f"{c.gw} golden replay --model {w.url} " + " ".join(f"--golden {shlex.quote(str(g))}" for g in w.golden)
              if w.golden else  # the served version's golden sets, as the registry links them: the sidecar knows
              c.post(f"/v1/models/{w.name}/check", '{"checks": ["golden"], "wait": true}')
              + "   # replay the served version's golden sets now")
    text = _head(w.name, s)
    text += _section("How to recognise it", [
        f"- Page `goldwatch/{w.name}/golden` (critical): which output moved, by how much, against which calibrated "
        "tolerance; the files verify (no integrity page).",
        f"- Metrics: `goldwatch_check_runs_total{{model=\"{w.name}\",check=\"golden\",status=\"fail\"}}`, "
        f"`goldwatch_rollbacks_total{{model=\"{w.name}\"}}`"
        + (f", `goldwatch_degraded{{model=\"{w.name}\"}} == 1` when no known-good version was left." if w.fallback
           else "."),
    ])
    did = ["- It re-ran the golden replay once at once (a failure is confirmed before anything is done), checked that "
           "the server runs the version the registry serves (a missed reload gets a reload, not a rollback), then "
           "rolled back to the newest verified known-good version and re-checked it."]
    if w.fallback is not None and w.route is not None:
        did.append("- If no verified known-good version was left, it routed traffic to the fallback once its golden "
                   f"sets passed ({_route_how(w)}) and paged that there is no known-good version; traffic goes back "
                   "when the primary passes its golden sets again.")
    else:
        did.append("- If no verified known-good version was left, it paged that (no fallback is configured).")
    text += _section("What goldwatch already did", did)
    text += _section("Check", _code(*check, replay))
    text += _section("Undo / recover", [
        "Find what changed (a runtime or driver upgrade, preprocessing, a dependency): the bytes did not. Promote a "
        "version that passes its golden sets, or fix the serving environment and reload the model; goldwatch "
        "routes traffic back by itself once the primary passes.", "",
        *_code(f"curl -s -X POST {w.url.split('/v2/models/')[0]}/v2/repository/models/"
               f"{w.url.split('/v2/models/')[1].split('/')[0]}/load   # reload the model in its server", *route)])
    return text


def _gpu(c: _Ctx, w: ServeWatchConfig) -> list[str]:
    s = scenario("4")
    check, route = _model_base(c, w)
    text = _head(w.name, s)
    text += _section("How to recognise it", [
        f"- Page `goldwatch/{w.name}/device` (error): `device:available: cuda:N LOST: ...` (the server reports its "
        "device unusable; goldwatch's MLServer runtime exercises it on every metadata request).",
        f"- Metrics: `goldwatch_check_runs_total{{model=\"{w.name}\",check=\"device\",status=\"fail\"}}`"
        + (f", `goldwatch_degraded{{model=\"{w.name}\"}} == 1` while traffic is on the CPU variant." if w.cpu_variant
           else "."),
    ])
    if w.cpu_variant is not None and w.route is not None:
        golden = ", ".join(f"`{g}`" for g in w.cpu_variant.golden) or "the served version's golden sets (built " \
            "across CPU and CUDA: their tolerances cover the difference)"
        did = [f"- It confirmed the loss with one immediate re-run, replayed {golden} against the CPU variant "
               f"`{w.cpu_variant.url}` and, only when they passed, routed `{w.name}`'s traffic there "
               f"({_route_how(w)}). An unproven CPU variant is never routed to"
               + (" (it tries the fallback next)." if w.fallback else "."),
               "- It keeps checking the GPU server; once its device and every check pass again, traffic goes back "
               "to it and the incident resolves."]
    else:
        did = ["- It paged (error). No CPU variant is configured: add `[serve.watch.cpu_variant]` (proven by the "
               "cross-device golden set) and `[serve.watch.route]` to fail over."]
    text += _section("What goldwatch already did", did)
    text += _section("Check", _code(*check, f"curl -s {w.url}   # the model's metadata: parameters.goldwatch_device*",
                                    "nvidia-smi   # on the GPU node",
                                    _metrics(c, w.name, "goldwatch_(degraded|alternate_ready)")))
    text += _section("Undo / recover", [
        "Replace the node, restart the driver or the pod, or scale the GPU pool back up; goldwatch routes traffic "
        "back once the device check passes.", "", *(_code(*route) if route else ["(no route to undo)"])])
    return text


def _asset(c: _Ctx, a: AssetConfig) -> list[str]:
    s = scenario("5")
    cmd = f"{c.gw} asset"
    text = _head(a.name, s)
    text += _section("How to recognise it", [
        f"- Pages `goldwatch/{a.name}/backup` (a snapshot failed to restore and verify: which one, which file, what "
        f"differs), `goldwatch/{a.name}/rpo` (the newest verified restore point is older than {a.rpo_seconds:g} s; "
        f"critical when none verifies) and `goldwatch/{a.name}/asset` (the live {a.kind} fails its manifest).",
        f"- Metrics: `goldwatch_rpo_seconds{{asset=\"{a.name}\"}} > goldwatch_rpo_target_seconds{{asset=\"{a.name}\"}}`"
        f", `goldwatch_backup_verifications_total{{asset=\"{a.name}\",outcome=\"failed\"}}` rising.",
    ])
    text += _section("What goldwatch already did", [
        f"- Every {a.verify_interval_s:g} s it restored the snapshots under `{a.backups}`, newest first, into a "
        "scratch folder and checked every file's digest against the snapshot's manifest, until one verified: that "
        "is the newest verified restore point, and the training RPO is its age (in each page).",
        "- It restores nothing over the live data and deletes nothing: that is a person's decision.",
    ])
    text += _section("Check", _code(f"{cmd} verify {a.name}   # restore-and-verify now; exit 1 if a backup fails or "
                                    "the RPO is exceeded", f"{cmd} list {a.name}",
                                    f"curl -s {c.sidecar}/v1/assets",
                                    _metrics(c, a.name, "goldwatch_(rpo|backup)")))
    text += _section("Undo / recover", [
        "Restore the newest verified snapshot beside the live data, check it, then swap it in; take a fresh backup "
        "once the source is healthy (a corrupted snapshot stays for the postmortem until you delete it).", "",
        *_code(f"{cmd} restore {a.name} --out /tmp/{a.name}-restored   # --snapshot ID for an older one",
               f"{cmd} backup {a.name}")])
    return text


def runbooks(config: GoldwatchConfig, *, subject: str | None = None, config_path: str | None = None,
             ) -> list[Runbook]:
    """The runbooks of every watched model and asset (or of ``subject`` only), generated from ``config``."""
    c = _Ctx(config, config_path)
    models = [w for w in config.serve.watch if subject in (None, w.name)]
    assets = [a for a in config.recovery.assets if subject in (None, a.name)]
    if subject is not None and not models and not assets:
        known = [w.name for w in config.serve.watch] + [a.name for a in config.recovery.assets]
        raise InvalidInputError(f"{subject!r} is neither a watched model nor an asset (known: "
                                f"{', '.join(known) or 'none'})", where="MODEL",
                                hint="name one from [[serve.watch]] or [[recovery.assets]]")
    books: list[Runbook] = []
    for w in models:
        esc = c.escalation(w.escalation)
        for s, make in zip(SCENARIOS[:4], (_server, _corrupted, _wrong, _gpu)):
            lines = make(c, w) + _section("Escalate", [f"- {esc}"])
            books.append(Runbook(w.name, s, anchor(w.name, s), "\n".join(lines).strip() + "\n"))
    for a in assets:
        s = SCENARIOS[4]
        lines = _asset(c, a) + _section("Escalate", [f"- {c.escalation(a.escalation)}"])
        books.append(Runbook(a.name, s, anchor(a.name, s), "\n".join(lines).strip() + "\n"))
    return books


def write_runbooks(config: GoldwatchConfig, out: str | os.PathLike[str], *, subject: str | None = None,
                   config_path: str | None = None) -> list[Path]:
    """Write each runbook to ``out/<subject>/<n>-<slug>.md`` and all of them, with their anchors, to
    ``out/README.md`` (what ``alerts.runbook_url`` should point at). Returns the files written."""
    from goldwatch.watchdog.gate._files import atomic_write_text

    books = runbooks(config, subject=subject, config_path=config_path)
    root = Path(out)
    written = []
    for book in books:
        path = root / book.path
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, book.text)
        written.append(path)
    subjects = list(dict.fromkeys(b.subject for b in books))
    index = ["# goldwatch runbooks", "",
             "Generated by `goldwatch runbook` from goldwatch.toml: regenerate them when the config changes. Every "
             "page links its own section here (`alerts.runbook_url#<model>-<scenario>`).", ""]
    for name in subjects:
        index.append(f'- <a id="{name}"></a>`{name}`: ' + ", ".join(
            f"[{b.scenario.number}. {b.scenario.slug}](#{b.anchor})" for b in books if b.subject == name))
    for book in books:
        index += ["", "---", "", book.text.strip(), "", f"(also as [{book.path}]({book.path}))"]
    readme = root / "README.md"
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(readme, "\n".join(index) + "\n")
    return [readme, *written]
