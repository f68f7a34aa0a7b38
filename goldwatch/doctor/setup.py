"""What the configuration sets up, checked without changing anything: the config file, the registry, the alert
path (nothing is sent) and the sidecar (when one is configured). Doctor creates no registry, no outbox, no
incident; its one write is a temporary file, removed at once, to prove a directory is writable."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from goldwatch.checks import Check, Status
from goldwatch.config import DEFAULT_CONFIG_NAME, GoldwatchConfig, load_config
from goldwatch.errors import GoldwatchError

if TYPE_CHECKING:
    from goldwatch.watchdog.registry.storage.url import DatabaseUrl

__all__ = ["alerts", "config", "registry", "sidecar"]


def config(path: str | None) -> tuple[Check, GoldwatchConfig]:
    """The config file in use and whether it is valid; the defaults stand in for an invalid one (so the other
    checks still run)."""
    source = path or (DEFAULT_CONFIG_NAME if Path(DEFAULT_CONFIG_NAME).is_file() else None)
    if source is None:
        return (Check(name="config", status="pass",
                      summary=f"no {DEFAULT_CONFIG_NAME} here and no --config / $GOLDWATCH_CONFIG: built-in defaults"),
                GoldwatchConfig())
    try:
        loaded = load_config(source)
    except GoldwatchError as err:
        return (Check(name="config", status="fail", summary=f"{err}; the checks below use the built-in defaults",
                      details={"path": str(Path(source).absolute())}), GoldwatchConfig())
    return (Check(name="config", status="pass", summary=f"{source}: valid",
                  details={"path": str(Path(source).absolute())}), loaded)


def _writable(directory: Path) -> str | None:
    """None when a file can be created in ``directory``, else why not."""
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".goldwatch-doctor-"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _directory(name: str, path: Path, *, purpose: str, created_by: str) -> Check:
    if path.exists():
        if not path.is_dir():
            return Check(name=name, status="fail", summary=f"{path} is not a directory", details={"path": str(path)})
        why = _writable(path)
        if why is not None:
            return Check(name=name, status="fail", summary=f"{path} is not writable ({why}): {purpose}",
                         details={"path": str(path)})
        return Check(name=name, status="pass", summary=f"{path}: writable", details={"path": str(path)})
    parent = _nearest_existing(path)
    why = _writable(parent) if parent.is_dir() else "not a directory"
    if why is not None:
        return Check(name=name, status="fail",
                     summary=f"{path} does not exist and cannot be created ({parent}: {why}): {purpose}",
                     details={"path": str(path)})
    return Check(name=name, status="pass", summary=f"{path} does not exist yet; {created_by} creates it",
                 details={"path": str(path)})


def registry(cfg: GoldwatchConfig) -> list[Check]:
    """The registry database (SQLite in the root, or a fleet's PostgreSQL) readable and of a schema this goldwatch
    reads; the root (its artifact store) and the serving directory writable."""
    from goldwatch.watchdog.registry import database_from_config

    root = Path(os.environ.get("GOLDWATCH_REGISTRY_ROOT") or cfg.registry.root).absolute()
    try:
        url = database_from_config(cfg.registry)
    except GoldwatchError as err:
        return [Check(name="registry", status="fail", summary=f"the registry database is misconfigured: {err}")]
    if url is not None and url.backend == "postgresql":
        checks = [_postgres(url, root, cfg),
                  _directory("registry:store", root, purpose="the artifact store every host shares lives there",
                             created_by="the first `goldwatch registry add`")]
    else:
        checks = [_sqlite(url.path if url is not None and url.path is not None else root / "registry.db", root)]
    if cfg.registry.serving_dir is not None:
        checks.append(_directory("registry:serving_dir", Path(cfg.registry.serving_dir).absolute(),
                                 purpose="promote and rollback switch the served version there",
                                 created_by="the first promote"))
    return checks


def _schema_note(found: int) -> tuple[Status, str]:
    """(status, words) for a database of schema ``found``."""
    from goldwatch.watchdog.registry.storage.schema import SCHEMA_VERSION

    if found > SCHEMA_VERSION:
        return "fail", f"schema {found} is newer than this goldwatch reads ({SCHEMA_VERSION}): upgrade goldwatch"
    if found < SCHEMA_VERSION:
        return "pass", f"schema {found}, upgraded to {SCHEMA_VERSION} when it is next opened (PostgreSQL: by " \
                       "`goldwatch registry migrate`)"
    return "pass", f"schema {found}"


def _sqlite(db: Path, root: Path) -> Check:
    if not db.is_file():
        if root.is_dir() and any(root.iterdir()) and db.parent == root:
            return Check(name="registry", status="fail",
                         summary=f"{root} is not empty but holds no registry.db: not a goldwatch registry",
                         details={"path": str(root)})
        return _directory("registry", root, purpose="the registry keeps its database and artifacts there",
                          created_by="the first `goldwatch registry add`")
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            found = int(conn.execute("PRAGMA user_version").fetchone()[0])
            state = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.Error as exc:
        return Check(name="registry", status="fail", summary=f"{db} cannot be read: {exc}", details={"path": str(db)})
    if state != "ok":
        return Check(name="registry", status="fail", summary=f"{db} is damaged: {state}", details={"path": str(db)})
    status, schema = _schema_note(found)
    access = _directory("registry", root, purpose="add, promote and rollback write there",
                        created_by="`goldwatch registry add`")
    summary = f"{db}: SQLite, readable, integrity ok, {schema}" + (
        "; directory writable" if access.ok else f"; {access.summary}")
    return Check(name="registry", status="fail" if not access.ok else status,
                 summary=summary, details={"path": str(db), "schema": found})


def _postgres(url: DatabaseUrl, root: Path, cfg: GoldwatchConfig) -> Check:
    from goldwatch.watchdog.registry.names import default_host
    from goldwatch.watchdog.registry.settings import host_from_config
    from goldwatch.watchdog.registry.storage.database import Database

    try:
        host = host_from_config(cfg.registry) or default_host("postgresql")
        db = Database.connect(url, lock_path=root / "registry.lock", host=host, check=False)
    except GoldwatchError as err:
        return Check(name="registry", status="fail", summary=f"the registry database is not reachable: {err}",
                     details={"url": url.masked})
    try:
        found = db.schema_version()
    except GoldwatchError as err:
        return Check(name="registry", status="fail", summary=f"{url.masked}: {err}", details={"url": url.masked})
    finally:
        db.close()
    status, schema = _schema_note(found) if found else ("pass", "empty: the first `goldwatch registry add` "
                                                                  "creates the schema")
    return Check(name="registry", status=status,
                 summary=f"{url.masked}: PostgreSQL, reachable, {schema}", details={"url": url.masked, "schema": found})


def alerts(cfg: GoldwatchConfig) -> list[Check]:
    """Which sinks the config and environment define (the routing key is validated, never shown or used)."""
    from goldwatch.watchdog.alerts.manager import build_sinks, outbox_path
    from goldwatch.watchdog.alerts.notify import describe_sink

    try:
        sinks = build_sinks(cfg.alerts)
    except GoldwatchError as err:
        return [Check(name="alerts", status="fail", summary=f"alerting is configured but broken: {err}")]
    try:
        names = [describe_sink(s) for s in sinks]
    finally:
        for sink in sinks:
            sink.close()
    outbox = outbox_path(cfg.alerts, default_dir=cfg.registry.root)
    queued = _outbox_counts(outbox)
    backlog = f"; outbox {outbox}: {queued['pending']} pending, {queued['dead']} dead" if queued else ""
    if not names:
        pd = cfg.alerts.pagerduty
        return [Check(name="alerts", status="skip",
                      summary=f"no alert sink: incidents are journaled but nobody is paged (set ${pd.routing_key_env} "
                              f"to a PagerDuty Events API v2 key, or add [[alerts.webhooks]]){backlog}",
                      details={"outbox": str(outbox), **(queued or {})})]
    place = _directory("alerts:outbox", outbox.parent, purpose="undelivered alerts wait in the outbox there",
                       created_by="the first alert")
    status: Status = "pass" if place.ok else "fail"
    dead = f"; {queued['dead']} dead letter(s): goldwatch alert list --status dead" if queued and queued["dead"] else ""
    summary = f"sinks: {', '.join(names)} (nothing sent; `goldwatch alert test` sends a test incident){backlog}{dead}"
    if not place.ok:
        summary += f"; {place.summary}"
    return [Check(name="alerts", status=status, summary=summary,
                  details={"sinks": names, "outbox": str(outbox), **(queued or {})})]


def _outbox_counts(path: Path) -> dict[str, int] | None:
    if not path.is_file():
        return None
    try:
        with sqlite3.connect(f"file:{path.absolute()}?mode=ro", uri=True, timeout=5) as conn:
            rows = dict(conn.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())
    except sqlite3.Error:
        return None
    return {"pending": int(rows.get("pending", 0)), "dead": int(rows.get("dead", 0))}


def sidecar(cfg: GoldwatchConfig) -> list[Check]:
    """The sidecar this configuration points at answers its liveness and readiness probes: the one ``[serve]``
    runs (when ``[[serve.watch]]`` lists models) and the one ``[agent] sidecar_url`` reports to."""
    urls: dict[str, str] = {}  # url -> which setting names it (each probed once)
    serve = getattr(cfg, "serve", None)
    if serve is not None and getattr(serve, "watch", None) and getattr(serve, "port", 0):
        host = str(serve.host)
        urls[f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{serve.port}"] = "[serve]"
    agent = getattr(cfg, "agent", None)
    if agent is not None and getattr(agent, "sidecar_url", None):
        urls.setdefault(str(agent.sidecar_url).rstrip("/"), "[agent] sidecar_url")
    if not urls:
        return [Check(name="sidecar", status="skip",
                      summary="no sidecar configured ([[serve.watch]] lists no model, [agent] sidecar_url is unset)")]
    return [_probe_sidecar(where, url) for url, where in urls.items()]


def _probe_sidecar(where: str, base: str) -> Check:
    import httpx

    try:
        with httpx.Client(timeout=3.0, trust_env=False) as client:
            live = client.get(f"{base}/livez")
            ready = client.get(f"{base}/readyz")
    except httpx.HTTPError as exc:
        return Check(name="sidecar", status="fail",
                     summary=f"the sidecar {where} names, {base}, is not reachable ({type(exc).__name__}): is "
                             "`goldwatch serve` running?", details={"url": base})
    if live.status_code != 200:
        return Check(name="sidecar", status="fail", summary=f"{base}/livez answered {live.status_code}",
                     details={"url": base})
    if ready.status_code != 200:
        return Check(name="sidecar", status="fail",
                     summary=f"{base} is alive but not ready ({ready.status_code}): {ready.text[:200]}",
                     details={"url": base})
    return Check(name="sidecar", status="pass", summary=f"{base} ({where}): live and ready", details={"url": base})
