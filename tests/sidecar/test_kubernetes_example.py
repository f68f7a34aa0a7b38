"""The Kubernetes example is usable as written: its pod parts agree with the goldwatch.toml it ships."""

from __future__ import annotations

import json
import shlex
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from goldwatch.config import parse_config

yaml = pytest.importorskip("yaml")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kubernetes" / "sidecar.yaml"


def _docs() -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d}


def _mount(container: dict[str, Any], volume: str) -> dict[str, Any]:
    (found,) = [m for m in container["volumeMounts"] if m["name"] == volume]
    return found


def test_the_example_pod_matches_the_config_it_references() -> None:
    docs = _docs()
    config_map = docs[("ConfigMap", "goldwatch-config")]
    config = parse_config(config_map["data"]["goldwatch.toml"], source="examples/kubernetes: goldwatch.toml")
    pod = docs[("Deployment", "fraud-model")]["spec"]["template"]
    spec = pod["spec"]
    (sidecar,) = spec["initContainers"]
    (server,) = spec["containers"]
    volumes = {v["name"]: v for v in spec["volumes"]}

    # a native sidecar, started with the start-up gate, its config from the ConfigMap
    assert sidecar["restartPolicy"] == "Always"
    args = sidecar["args"]
    assert args[0] == "serve"
    assert "--verify-first" in args
    config_path = PurePosixPath(args[args.index("--config") + 1])
    assert volumes[_mount(sidecar, "config")["name"]]["configMap"]["name"] == "goldwatch-config"
    assert config_path.parent == PurePosixPath(_mount(sidecar, "config")["mountPath"])
    assert config_path.name in config_map["data"]

    # probes: start-up = files verified, liveness shallow, readiness meaningful, all on the serve port
    port = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    assert port["goldwatch"] == config.serve.port
    assert config.serve.host == "0.0.0.0"
    assert sidecar["startupProbe"]["httpGet"]["path"] == "/startupz"
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == config.serve.port
    assert annotations["prometheus.io/path"] == "/metrics"

    # secrets come from the Secret, through the variables the config names
    secret = docs[("Secret", "goldwatch-secrets")]
    env = {e["name"]: e for e in sidecar["env"]}
    for variable in (config.serve.token_env, config.alerts.pagerduty.routing_key_env):
        ref = env[variable]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "goldwatch-secrets"
        assert ref["key"] in secret["stringData"]
    assert "token" not in config_map["data"]["goldwatch.toml"].replace("token_env", "")

    # one model volume: read-write for the sidecar (rollback switches the pointer), read-only for the server
    assert _mount(server, "models")["readOnly"] is True
    assert not _mount(sidecar, "models").get("readOnly", False)
    (watch,) = config.serve.watch
    models_mount = PurePosixPath(_mount(sidecar, "models")["mountPath"])
    assert PurePosixPath(str(watch.serving_dir)).is_relative_to(models_mount)
    assert PurePosixPath(str(config.registry.root)) == PurePosixPath(_mount(sidecar, "state")["mountPath"])

    # the server the config watches is this pod's server, and it reads the pointer the registry switches
    http_port = {p["name"]: p["containerPort"] for p in server["ports"]}["http"]
    assert watch.url.startswith(f"http://127.0.0.1:{http_port}/v2/models/")
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    settings = json.loads(docs[("ConfigMap", "mlserver-models")]["data"]["model-settings.json"])
    assert settings["name"] == watch.url.rsplit("/", 1)[1]
    assert settings["parameters"]["uri"] == f"{watch.serving_dir}/current"
    assert PurePosixPath(settings["parameters"]["uri"]).is_relative_to(PurePosixPath(_mount(server, "models")
                                                                                     ["mountPath"]))
    assert shlex.join(server["args"]).startswith("mlserver start")

    # storm control: a pod being deleted stops its server before the sidecar ever pages
    assert watch.server_down_grace_s > spec["terminationGracePeriodSeconds"]
    for container in (sidecar, server):
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]["memory"]
