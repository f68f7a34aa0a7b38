"""What is installed: goldwatch itself, each optional extra's packages, MLServer, Chromium.

The extras and their packages are read from goldwatch's own package metadata (what ``pip install
'goldwatch[EXTRA]'`` installs), so a new extra is diagnosed without a change here. A package counts as available
when the import system can find it -- the same test the code that needs it will meet.
"""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

from goldwatch._version import __version__
from goldwatch.checks import Check

__all__ = ["chromium", "extras", "goldwatch_itself", "mlserver"]

# What each extra lets goldwatch do (an extra not listed here is still diagnosed, by its packages).
PURPOSE = {
    "torch": "TorchScript, torch.export and state-dict models; torch checkpoints; resident-weight and CUDA "
             "fingerprints",
    "onnx": "ONNX models (ONNX Runtime) and their tensor fingerprints",
    "reports": "Evidently drift reports embedded in the gate's HTML report (--evidently)",
    "serve": "the HTTP API of the sidecar (starlette + uvicorn)",
    "mlflow": "the registry layout that moves an MLflow model alias",
    "parquet": "Parquet inputs for drift tests and golden sets",
    "text": "golden sets built from sentences (--tokenizer)",
    "dask": "drift tests and fingerprints on a Dask cluster (--dask)",
    "postgres": "a registry shared by a fleet, on PostgreSQL",
}
# Extras that are tools for developing goldwatch, or only bundle the others.
_NOT_CAPABILITIES = {"all", "dev"}

# distribution name -> import name, where they differ
_IMPORT_NAME = {"mlflow-skinny": "mlflow", "prometheus-client": "prometheus_client", "pyyaml": "yaml",
                "psycopg-binary": "psycopg", "psycopg": "psycopg", "pytest-timeout": "pytest_timeout"}


def importable(module: str) -> bool:
    """True when ``import module`` would find it (imports nothing)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return match.group(1).lower().replace("_", "-") if match else requirement


def declared_extras() -> dict[str, list[str]]:
    """extra -> the distributions it adds, from goldwatch's installed metadata (empty if goldwatch isn't installed)."""
    try:
        requires = metadata.requires("goldwatch") or []
    except metadata.PackageNotFoundError:
        return {}
    extras: dict[str, list[str]] = {}
    for req in requires:
        match = re.search(r"""extra\s*==\s*["']([^"']+)["']""", req)
        if match is None:
            continue
        name = _requirement_name(req)
        if name == "goldwatch":
            continue
        extras.setdefault(match.group(1), [])
        if name not in extras[match.group(1)]:
            extras[match.group(1)].append(name)
    return extras


def goldwatch_itself() -> list[Check]:
    where = Path(__file__).resolve().parents[1]
    return [
        Check(name="goldwatch", status="pass", summary=f"goldwatch {__version__} at {where}",
              details={"version": __version__, "path": str(where)}),
        Check(name="python", status="pass",
              summary=f"Python {platform.python_version()} ({sys.executable}) on {platform.platform(terse=True)}",
              details={"version": platform.python_version(), "executable": sys.executable,
                       "platform": platform.platform()}),
    ]


def extras() -> list[Check]:
    """One check per optional extra: pass when all its packages import, skip (with what is missing) otherwise."""
    checks = []
    for extra, dists in sorted(declared_extras().items()):
        if extra in _NOT_CAPABILITIES:
            continue
        found, missing = {}, []
        for dist in dists:
            module = _IMPORT_NAME.get(dist, dist.replace("-", "_"))
            version = _version(dist)
            if importable(module) and version is not None:
                found[dist] = version
            else:
                missing.append(dist)
        purpose = PURPOSE.get(extra, f"what needs goldwatch[{extra}]")
        listed = ", ".join(f"{d} {v}" for d, v in found.items())
        if not missing:
            checks.append(Check(name=f"extra:{extra}", status="pass", summary=f"{listed}: {purpose}",
                                details={"packages": found}))
        else:
            checks.append(Check(
                name=f"extra:{extra}", status="skip",
                summary=f"not installed ({', '.join(missing)}): no {purpose} (pip install 'goldwatch[{extra}]')",
                details={"packages": found, "missing": missing},
            ))
    return checks


def mlserver() -> list[Check]:
    version = _version("mlserver")
    if version is None or not importable("mlserver"):
        return [Check(name="mlserver", status="skip",
                      summary="MLServer is not installed: golden replay and the gate still reach any OIP v2 server "
                              "by URL; goldwatch's MLServer runtime and its tests need it (pip install mlserver)")]
    exe = shutil.which("mlserver") or str(Path(sys.executable).with_name("mlserver"))
    has_exe = Path(exe).is_file()
    return [Check(name="mlserver", status="pass",
                  summary=f"MLServer {version}" + (f" ({exe})" if has_exe else " (no mlserver executable on PATH)"),
                  details={"version": version, "executable": exe if has_exe else None})]


CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium() -> list[Check]:
    found = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    if found is None:
        return [Check(name="chromium", status="skip",
                      summary="no Chromium on PATH: HTML reports are still written; rendering them headless (the "
                              "HTML report checks) needs it (Debian: apt-get install chromium)")]
    try:
        done = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=20, check=False)
        version = done.stdout.strip() or done.stderr.strip() or "version unknown"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [Check(name="chromium", status="fail", summary=f"{found} does not run: {exc}",
                      details={"path": found})]
    return [Check(name="chromium", status="pass", summary=f"{version} ({found}): HTML reports can be rendered headless",
                  details={"path": found, "version": version})]
