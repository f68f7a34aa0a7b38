"""Building blocks of the sidecar tests: npz releases with golden sets, a registry that serves them, TOML configs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from goldwatch.golden_sets import build_golden_set
from goldwatch.runtimes.mlserver_testing import NpzReferenceRuntime, write_npz_model_dir
from goldwatch.watchdog.registry import Registry, Serving, make_pointer

if TYPE_CHECKING:
    from goldwatch.watchdog.sidecar.service import SidecarService

ROUTING_KEY = "S1d3carR0ut1ngK3yTEST0123456789a"
TOKEN = "sidecar-test-token-5b8e0c1d"
assert len(ROUTING_KEY) == 32

N_IN, N_OUT = 16, 4


def release(folder: Path, seed: int, *, version: str | None = None) -> Path:
    """A weights folder (``weights.npz``; ``VERSION`` when given) for the npz test runtime."""
    folder.mkdir(parents=True, exist_ok=True)
    w = np.random.default_rng(seed).standard_normal((N_IN, N_OUT)).astype(np.float32)
    np.savez(folder / "weights.npz", w=w)
    if version is not None:
        (folder / "VERSION").write_text(version)
    return folder


def golden_for(weights: Path, out: Path, *, seed: int = 7) -> Path:
    """A golden set of the answers ``x @ w`` for 64 seeded inputs (tolerances calibrated from 2 runs)."""
    x = np.random.default_rng(seed).standard_normal((64, N_IN)).astype(np.float32)
    build_golden_set(NpzReferenceRuntime(weights), {"x": x}, out, repeats=2, roles={"y": "tensor"},
                     overwrite=True)
    return out


def served_registry(root: Path, repo: Path, model: str, *, releases: int = 3, stamp: bool = False,
                    base_seed: int = 0) -> Path:
    """Add and promote ``releases`` versions of ``model`` (each with its golden set); the pointer serves the last.
    Returns the serving directory (``repo/model``, which the npz runtime reads through ``current``)."""
    serving = write_npz_model_dir(repo, model)
    reg = Registry.open(root / "registry")
    try:
        reg.attach(model, Serving(make_pointer("current-link", serving)))
        for i in range(1, releases + 1):
            src = release(root / "src" / model / str(i), base_seed + i, version=str(i) if stamp else None)
            golden = golden_for(src, root / "golden" / model / str(i))
            mv = reg.add(model, src, version=str(i), golden=[golden])
            reg.promote(model, mv.version, reason="release")
    finally:
        reg.close()
    return serving


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (str, Path)):
        return json.dumps(str(v))
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(type(v))


def _table(prefix: str, data: Mapping[str, Any], out: list[str], *, array: bool = False) -> None:
    out.append(f"[[{prefix}]]" if array else f"[{prefix}]")
    nested = []
    for key, value in data.items():
        if isinstance(value, Mapping) or (isinstance(value, list) and value and isinstance(value[0], Mapping)):
            nested.append((key, value))
        else:
            out.append(f"{key} = {_value(value)}")
    for key, value in nested:
        if isinstance(value, Mapping):
            _table(f"{prefix}.{key}", value, out)
        else:
            for item in value:
                _table(f"{prefix}.{key}", item, out, array=True)


def toml(sections: Mapping[str, Mapping[str, Any]]) -> str:
    """TOML text of ``{"section": {...}}`` (nested tables and arrays of tables)."""
    out: list[str] = []
    for name, data in sections.items():
        _table(name, data, out)
    return "\n".join(out) + "\n"


def fast_watch(name: str, url: str, serving_dir: Path, **overrides: Any) -> dict[str, Any]:
    """A [[serve.watch]] table with test-speed intervals (sub-second detection)."""
    watch: dict[str, Any] = {
        "name": name, "url": url, "serving_dir": serving_dir, "server_down_grace_s": 1.5,
        "server_start_grace_s": 30.0,
        "files": {"interval_s": 0.5, "timeout_s": 20.0, "sha256_interval_s": 0.0},
        "golden_replay": {"interval_s": 1.0, "timeout_s": 20.0, "batch_size": 64},
        "readiness": {"interval_s": 1.0, "timeout_s": 2.0},
        "version": {"interval_s": 1.0, "timeout_s": 2.0},
        "rollback_readiness": {"interval_s": 5.0, "timeout_s": 20.0},
    }
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(watch.get(key), dict):
            watch[key] = {**watch[key], **value}
        else:
            watch[key] = value
    return watch


def sidecar_config(root: Path, *, port: int, watches: Sequence[Mapping[str, Any]], **serve: Any) -> Path:
    text = toml({
        "registry": {"root": root / "registry", "ready_timeout_s": 30.0},
        "alerts": {"outbox_path": root / "alerts.sqlite", "retry_base_s": 0.05, "retry_max_delay_s": 0.2,
                   "rto_seconds": 60.0},
        "serve": {"host": "127.0.0.1", "port": port, "journal": root / "sidecar.sqlite", "jitter": 0.05,
                  "shutdown_timeout_s": 8.0, **serve, "watch": list(watches)},
    })
    path = root / "goldwatch.toml"
    path.write_text(text)
    return path


def sidecar_env(pagerduty_url: str) -> dict[str, str]:
    return {"GOLDWATCH_PAGERDUTY_ROUTING_KEY": ROUTING_KEY, "GOLDWATCH_PAGERDUTY_EVENTS_URL": pagerduty_url,
            "GOLDWATCH_SERVE_TOKEN": TOKEN}


@contextlib.contextmanager
def running(service: SidecarService) -> Iterator[str]:
    """Run ``service`` and its HTTP API (uvicorn) on an event loop in a thread; yields its URL once ready."""
    from goldwatch.watchdog.sidecar.runner import bind, serve_forever

    sock = bind("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve_forever(service, sock, stop=stop),),
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                break
        time.sleep(0.05)
    try:
        yield url
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(20)
        assert not thread.is_alive()
