"""Helpers for the agent tests: goldwatch model directories generated in code, and the evidence contract both sides
build to (the real sidecar, ``goldwatch serve``, receives the reports in tests/agent/test_mlserver_agent.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from goldwatch.examples import KINDS
from goldwatch.integrity import build_manifest
from goldwatch.runtimes.base import DESCRIPTOR_NAME

FACTORY = KINDS["tabular"].factory
SIGNATURE = KINDS["tabular"].signature.to_dict()


def write_model_dir(path: Path, *, seed: int, hidden: int = 32, manifest: bool = True) -> Path:
    """A ``goldwatch-model.json`` directory of the tabular MLP with ``hidden`` units (hidden=600: the middle
    layers' weights are 1.4 MB, two 1 MiB blocks), random weights from ``seed``; its manifest beside it."""
    import torch
    from safetensors.torch import save_file

    from goldwatch.examples.models import tabular_mlp

    path.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = tabular_mlp(hidden=hidden)
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path / "weights.safetensors"))
    descriptor = {"format": "goldwatch-model", "version": 1, "factory": FACTORY, "kwargs": {"hidden": hidden},
                  "weights": "weights.safetensors", "signature": SIGNATURE}
    (path / DESCRIPTOR_NAME).write_text(json.dumps(descriptor, indent=2))
    if manifest:
        build_manifest(path).save(path.parent / f"{path.name}.manifest.json")
    return path


def flip_file_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


_PATH = re.compile(r"^/v1/models/([A-Za-z0-9][A-Za-z0-9._-]*)/evidence$")
_SOURCE = re.compile(r"^agent:[^:\s]+:\d+$")
_BODY_KEYS = {"source", "kind", "version", "interval_s", "checks"}
_CHECK_KEYS = {"name", "status", "summary", "measured", "threshold", "details"}


def body_problems(body: Any) -> list[str]:
    """Everything wrong with an evidence body, judged by the contract both sides build to."""
    if not isinstance(body, dict):
        return ["the body is not a JSON object"]
    problems = []
    if set(body) != _BODY_KEYS:
        problems.append(f"keys {sorted(body)} != {sorted(_BODY_KEYS)}")
    if not isinstance(body.get("source"), str) or not _SOURCE.match(body["source"]):
        problems.append(f"source {body.get('source')!r} is not agent:<host>:<pid>")
    if body.get("kind") != "resident":
        problems.append(f"kind {body.get('kind')!r} != 'resident'")
    if body.get("version") is not None and not isinstance(body.get("version"), str):
        problems.append("version must be a string or null")
    interval = body.get("interval_s")
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
        problems.append(f"interval_s {interval!r} is not a positive number")
    checks = body.get("checks")
    if not isinstance(checks, list) or not checks:
        return [*problems, "checks must be a non-empty list"]
    for i, check in enumerate(checks):
        if not isinstance(check, dict) or set(check) != _CHECK_KEYS:
            problems.append(f"checks[{i}] keys {sorted(check) if isinstance(check, dict) else check!r}")
            continue
        if not isinstance(check["name"], str) or not check["name"].startswith("resident:"):
            problems.append(f"checks[{i}].name {check['name']!r}")
        if check["status"] not in ("pass", "fail", "error", "skip"):
            problems.append(f"checks[{i}].status {check['status']!r}")
        if not isinstance(check["summary"], str):
            problems.append(f"checks[{i}].summary is not a string")
        for key in ("measured", "threshold"):
            value = check[key]
            if not isinstance(value, dict) or not all(
                    v is None or isinstance(v, (str, int, float, bool)) for v in value.values()):
                problems.append(f"checks[{i}].{key} must map names to numbers, strings, booleans or null")
        if not isinstance(check["details"], dict):
            problems.append(f"checks[{i}].details is not an object")
    return problems
