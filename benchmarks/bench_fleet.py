"""A fleet on one registry: 50 client processes, each a host with its own serving pointer, run add / promote /
rollback / check on a model of their own and on one model they all share -- on PostgreSQL and on SQLite.

Reports operations per second and p50/p99 latency per backend, side by side, and verifies zero lost updates: the
audit trail replays (every state change starts from the state the previous one left; the model's revision counts
each change exactly once), every promote a client saw succeed is in the trail under its name, and every pointer
switch a client made is the last recorded decision of that host, in the same order.

PostgreSQL runs with fsync on (a committed change survives power loss, like SQLite's synchronous=FULL here), in
a throwaway cluster on 127.0.0.1 (Debian's postgresql package). Both backends share the same store on local disk.

    .venv/bin/python -m benchmarks.bench_fleet [--quick] [--clients N] [--ops N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._results import record, table

SHARED = "shared"


def _artifact(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(seed.to_bytes(8, "little") * 512)  # 4 KiB: the database and the locks are what is measured
    return path


def client(root: str, database: str, host: str, seed: int, ops: int, barrier: Any, out: str) -> None:
    """One host: its own model and pointer, plus the shared model; ``ops`` rounds of add/promote/rollback/check."""
    from goldwatch.errors import ConcurrentChangeError, RegistryError
    from goldwatch.watchdog.registry import Registry, Serving, make_pointer

    own = f"own-{host}"
    base = Path(root).parent / "hosts" / host
    serving = {m: Serving(make_pointer("current-link", base / "serve" / m)) for m in (own, SHARED)}
    records: list[dict[str, Any]] = []
    with Registry.open(root, database=database, host=host, serving=serving) as reg:
        for i in (1, 2):  # setup, not timed: two known-good versions of its own model
            reg.promote(own, reg.add(own, _artifact(base / "src" / f"setup-{i}", seed * 100 + i), actor=host).version,
                        actor=host, reason="setup")
        barrier.wait()
        for i in range(ops):
            model = own if i % 2 == 0 else SHARED
            for op in ("add", "promote", "rollback", "check"):
                t0 = time.perf_counter()
                rec: dict[str, Any] = {"host": host, "model": model, "op": op}
                try:
                    if op == "add":
                        mv = reg.add(model, _artifact(base / "src" / f"{i}", seed * 100_000 + i), actor=host)
                        rec["version"] = mv.version
                    elif op == "promote":
                        version = records[-1]["version"]
                        reg.promote(model, version, actor=host, reason="bench: promote")
                        rec.update(version=version, switched=version)
                    elif op == "rollback":
                        result = reg.rollback(model, actor=host, reason="bench: rollback")
                        rec.update(version=result.from_version, switched=result.to_version if result.switched else None)
                    else:
                        reg.check(model)
                    rec["outcome"] = "ok"
                except ConcurrentChangeError:
                    rec["outcome"] = "conflict"
                except RegistryError as exc:  # e.g. promoting a version another host quarantined meanwhile
                    rec.update(outcome="refused", error=exc.what)
                except KeyError:
                    rec["outcome"] = "refused"
                rec["s"] = time.perf_counter() - t0
                rec["end"] = time.time()
                records.append(rec)
    Path(out).write_text("".join(json.dumps(r) + "\n" for r in records))


def _lost_updates(root: Path, database: str, records: list[dict[str, Any]],
                  models: list[str]) -> tuple[list[str], int]:
    """Everything that would betray a lost update ([] when there is none), and how often a rollback decided again
    because another client changed what it rested on."""
    from goldwatch.watchdog.registry import Registry
    from goldwatch.watchdog.registry.journal import open_intents

    problems = []
    redecided = 0
    with Registry.open(root, database=database, host="auditor") as reg:
        if open_intents(reg.db):
            problems.append(f"{len(open_intents(reg.db))} intents left open")
        for model in models:
            state: dict[str, str] = {}
            changes = 0
            events = reg.history(model)
            redecided += sum(e.reason == "interrupted rollback: reverted" for e in events)
            for e in events:
                if e.to_state is not None:
                    if e.from_state != state.get(e.version):
                        problems.append(f"{model} {e.version}: event {e.id} starts from {e.from_state}, the trail "
                                        f"left {state.get(e.version)}")
                    state[e.version] = e.to_state
                    changes += 1
            if {v.version: v.state for v in reg.list(model)} != state:
                problems.append(f"{model}: the rows disagree with the trail")
            rev = reg.db.one("SELECT rev FROM models WHERE name = ?", (model,))[0]
            if rev != changes:
                problems.append(f"{model}: revision {rev} but {changes} recorded state changes")
            mine = [r for r in records if r["model"] == model and r["outcome"] == "ok"]
            promoted = {(r["host"], r["version"]) for r in mine if r["op"] == "promote"}
            recorded = {(e.actor, e.version) for e in events if e.action == "promote"}
            if not promoted <= recorded:
                problems.append(f"{model}: {len(promoted - recorded)} successful promotes missing from the trail")
            for host in {r["host"] for r in records}:
                switched = [r["switched"] for r in mine if r["host"] == host and r.get("switched")]
                serves = [e.version for e in events if e.action == "serve" and e.evidence.get("host") == host
                          and e.reason != "setup"]
                if switched != serves:
                    problems.append(f"{model} on {host}: switches {switched} != recorded {serves}")
                target = reg.serving_target(model, host=host)
                if switched and (target is None or target[0] != switched[-1]):
                    problems.append(f"{model} on {host}: serves {target}, last switch {switched[-1]}")
    return problems, redecided


def run_backend(name: str, database: str, tmp: Path, clients: int, ops: int) -> dict[str, Any]:
    from goldwatch.watchdog.registry import Registry

    root = tmp / name / "reg"
    with Registry.open(root, database=database, host="ci") as reg:  # the shared model: two known-good versions
        for i in (1, 2):
            reg.promote(SHARED, reg.add(SHARED, _artifact(tmp / name / "src" / str(i), i)).version, reason="setup",
                        serve=False)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(clients + 1)
    outs = [tmp / name / f"client-{c}.jsonl" for c in range(clients)]
    procs = [ctx.Process(target=client, args=(str(root), database, f"client-{c}", c + 1, ops, barrier, str(outs[c])))
             for c in range(clients)]
    for p in procs:
        p.start()
    barrier.wait(timeout=600)
    t0 = time.time()
    for p in procs:
        p.join(3600)
        if p.exitcode != 0:
            raise SystemExit(f"{name}: a client failed (exit {p.exitcode})")
    records = [json.loads(line) for out in outs for line in out.read_text().splitlines()]
    wall = max(r["end"] for r in records) - t0
    problems, redecided = _lost_updates(root, database, records,
                                        [SHARED, *sorted({f"own-client-{c}" for c in range(clients)})])
    lat = sorted(r["s"] for r in records)
    by_op = {op: sorted(r["s"] for r in records if r["op"] == op) for op in ("add", "promote", "rollback", "check")}
    return {
        "ops": len(records), "wall": wall, "ops_s": len(records) / wall,
        "p50": statistics.median(lat), "p99": lat[int(0.99 * (len(lat) - 1))],
        "by_op": {op: (statistics.median(v), v[int(0.99 * (len(v) - 1))]) for op, v in by_op.items()},
        "conflicts": sum(r["outcome"] == "conflict" for r in records),
        "refused": sum(r["outcome"] == "refused" for r in records),
        "shared_ops": sum(r["model"] == SHARED for r in records), "problems": problems, "redecided": redecided,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 clients, 4 rounds (for development)")
    parser.add_argument("--clients", type=int, default=None)
    parser.add_argument("--ops", type=int, default=None, help="rounds per client (each: add, promote, rollback, check)")
    args = parser.parse_args()
    clients = args.clients or (10 if args.quick else 50)
    ops = args.ops or (4 if args.quick else 8)

    from goldwatch.watchdog.registry.storage.pg_testing import running_postgres

    results = {}
    with tempfile.TemporaryDirectory(prefix="gw-bench-fleet-") as d, running_postgres(fsync=True) as pg:
        tmp = Path(d)
        results["PostgreSQL 15"] = run_backend("postgresql", pg.url(), tmp, clients, ops)
        results["SQLite (WAL, one host)"] = run_backend("sqlite", f"sqlite:///{tmp / 'sqlite' / 'reg' / 'registry.db'}",
                                                        tmp, clients, ops)
    rows = []
    for name, r in results.items():
        rows.append([name, r["ops"], f"{r['wall']:.1f}", f"**{r['ops_s']:.1f}**", f"{r['p50'] * 1000:.0f}",
                     f"**{r['p99'] * 1000:.0f}**", r["redecided"], r["conflicts"], r["refused"],
                     "**0**" if not r["problems"] else f"**{len(r['problems'])}**"])
    op_rows = [[op, *(f"{results[n]['by_op'][op][0] * 1000:.0f} / {results[n]['by_op'][op][1] * 1000:.0f}"
                      for n in results)] for op in ("add", "promote", "rollback", "check")]
    pg_r, lite = results["PostgreSQL 15"], results["SQLite (WAL, one host)"]
    lines = [
        f"{clients} client processes on this machine, each a host with its own serving pointers (current-link), "
        f"{ops} rounds each of add / promote / rollback / check, alternating between the client's own model and "
        f"one model all clients share ({pg_r['shared_ops']} of {pg_r['ops']} operations on the shared one). "
        "Artifacts are 4 KiB, so the database and its locks are what is measured; every promote and rollback "
        "still re-verifies the artifact and copies it into the host's serving directory.",
        "",
        table(["backend", "operations", "wall s", "ops/s", "p50 ms", "p99 ms", "rollbacks decided again",
               "conflicts (retried out)", "refused", "lost updates"], rows),
        "",
        table(["operation: p50 / p99 ms", *results], op_rows),
        "",
        f"- PostgreSQL / SQLite throughput: {pg_r['ops_s'] / lite['ops_s']:.2f}x; p99 latency "
        f"{lite['p99'] / pg_r['p99']:.2f}x lower on PostgreSQL.",
        "- Lost updates: the trail of every model replays (each change starts where the previous one left it; the "
        "model revision equals the number of changes), every successful promote is in the trail, and every "
        "pointer switch of every client is that host's recorded decision, in order"
        + (": none on either backend." if not (pg_r["problems"] or lite["problems"]) else
           f": PROBLEMS {pg_r['problems'][:3]} {lite['problems'][:3]}"),
        "- SQLite serialises every writer through one lock for the whole operation (one host only); PostgreSQL runs "
        "operations side by side and locks only the rows each decision touches, until it commits. Every rollback "
        "quarantines the version it leaves, which on the shared model is often the target another client's "
        "rollback just picked: that rollback decides again (staging its new target anew), which is what the "
        "PostgreSQL rollback tail is made of. A 'conflict' is a rollback still contradicted after all its retries "
        "(ConcurrentChangeError, nothing changed); 'refused' is e.g. promoting a version another host had "
        "quarantined.",
        "- All 50 clients and the PostgreSQL server share this machine's 2 cores, so both backends are CPU-bound "
        "here (every PostgreSQL statement is also a context switch to a server process); in a fleet the clients "
        "are on their own machines.",
    ]
    body = "\n".join(lines)
    print(body)
    if any(r["problems"] for r in results.values()):
        raise SystemExit("lost updates found")
    record("fleet", body, command="python -m benchmarks.bench_fleet" + (" --quick" if args.quick else ""))


if __name__ == "__main__":
    os.environ.pop("GOLDWATCH_DATABASE_URL", None)
    main()
