"""Two (here three) processes writing at once never corrupt the registry."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from goldwatch.watchdog.registry import Registry, Serving, make_pointer
from tests.registry.registry_helpers import concurrent_writer


def test_concurrent_writers_keep_the_registry_consistent(tmp_path: Path) -> None:
    root, serve = tmp_path / "reg", tmp_path / "serve"
    Registry.open(root).close()
    ctx = multiprocessing.get_context("spawn")
    workers, count = 3, 3
    procs = [ctx.Process(target=concurrent_writer, args=(str(root), str(serve), w, count)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with Registry.open(root, serving={"m": Serving(make_pointer("current-link", serve))}) as reg:
        versions = reg.list("m")
        n = workers * count
        assert sorted(v.seq for v in versions) == list(range(1, n + 1))
        assert len({v.version for v in versions}) == n
        assert all(v.state == "known-good" for v in versions)
        assert all(reg.verify(v).ok for v in versions)
        actions = [e.action for e in reg.history("m")]
        assert (actions.count("add"), actions.count("promote"), actions.count("serve")) == (n, n, n)
        assert reg.db.integrity_problems() == []
        # the last promote to commit is the one served, on disk and in the database alike
        last_served = [e for e in reg.history("m") if e.action == "serve"][-1].version
        assert reg.serving_target("m")[0] == last_served
        assert str(reg.serving_for("m").pointer.read().source) == reg.serving_target("m")[1]
        assert reg.recovered == []
