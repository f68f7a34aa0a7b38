"""One host of a simulated fleet, run in its own process by the fleet tests and the fleet benchmark.

It opens the shared registry under its own host name with its own serving directory, and runs ``ops`` random
operations on the shared model ``m`` -- add + promote, promote, quarantine, rollback -- writing what each did (and
each pointer switch it made) as JSON lines, so the test can match every switch with a recorded decision.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from goldwatch.errors import ConcurrentChangeError, RegistryError
from goldwatch.watchdog.registry import Registry, Serving, make_pointer
from tests.registry.registry_helpers import write_weights


def run_host(root: str, serve_base: str, host: str, seed: int, ops: int, out: str) -> None:
    rng = random.Random(seed)
    src = Path(root).parent / f"src-{host}"
    serving = {"m": Serving(make_pointer("current-link", Path(serve_base) / host))}
    records = []
    with Registry.open(root, host=host, serving=serving) as reg:
        for i in range(ops):
            op = rng.choice(["add-promote", "promote", "quarantine", "rollback", "rollback"])
            t0 = time.perf_counter()
            record: dict[str, object] = {"host": host, "op": op}
            try:
                if op == "add-promote":
                    mv = reg.add("m", write_weights(src / str(i), seed=seed * 1000 + i, n=4), actor=host)
                    reg.promote("m", mv.version, actor=host, reason="fleet: new release")
                    record.update(version=mv.version, switched=mv.version)
                elif op == "promote":
                    live = [v.version for v in reg.list("m") if v.state in ("candidate", "known-good")]
                    version = rng.choice(live)
                    reg.promote("m", version, actor=host, reason="fleet: promote")
                    record.update(version=version, switched=version)
                elif op == "quarantine":
                    good = [v.version for v in reg.list("m", state="known-good")]
                    version = rng.choice(good)
                    reg.quarantine("m", version, actor=host, reason="fleet: proven bad")
                    record.update(version=version)
                else:
                    result = reg.rollback("m", actor=host, reason="fleet: rollback")
                    record.update(version=result.from_version, switched=result.to_version if result.switched else None,
                                  ok=result.ok)
                record["outcome"] = "ok"
            except ConcurrentChangeError as exc:
                record.update(outcome="conflict", error=str(exc))
            except RegistryError as exc:  # e.g. promoting a version another host quarantined after we listed it
                record.update(outcome="refused", error=str(exc))
            except IndexError:  # nothing to pick (no known-good version left)
                record.update(outcome="nothing")
            record["seconds"] = time.perf_counter() - t0
            records.append(record)
    Path(out).write_text("".join(json.dumps(r) + "\n" for r in records))
