"""The MLflow backend: the serving pointer is a registered-model alias in a local MLflow store (temp dir)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from goldwatch.watchdog.registry import Registry, Serving
from goldwatch.watchdog.registry.journal import CRASH_ENV
from tests.registry.registry_helpers import corrupt, write_weights

mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'goldwatch[mlflow]')")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning"),
]


@pytest.fixture
def mlflow_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    # The file store needs no database server; MLflow 3 keeps it behind this opt-in.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return (tmp_path / "mlruns").as_uri()


def test_alias_moves_on_promote_and_rollback(tmp_path: Path, mlflow_uri: str) -> None:
    from goldwatch.watchdog.registry.mlflow_backend import MlflowAliasPointer

    pointer = MlflowAliasPointer(mlflow_uri, "fraud", alias="champion")
    assert pointer.read() is None
    reg = Registry.open(tmp_path / "reg", serving={"fraud": Serving(pointer)})
    vs = [reg.promote("fraud", reg.add("fraud", write_weights(tmp_path / f"s{i}", i)).version, reason="ok")
          for i in (1, 2, 3)]
    client = mlflow.tracking.MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    champion = client.get_model_version_by_alias("fraud", "champion")
    assert champion.source == str(vs[2].path.resolve())
    assert champion.tags["goldwatch.label"] == "fraud:3"
    corrupt(vs[1].path / "weights.npz")
    result = reg.rollback("fraud", reason="v3 bad")
    assert result.ok
    assert result.to_version == "1"
    assert [s.version for s in result.skipped] == ["2"]
    champion = client.get_model_version_by_alias("fraud", "champion")
    assert champion.source == str(vs[0].path.resolve())
    assert str(champion.version) == "1"  # the existing MLflow version was reused, not registered twice
    assert reg.check("fraud").checks[-1].status == "pass"  # alias and registry agree
    reg.close()


def test_crash_after_alias_moved_is_completed_at_open(tmp_path: Path, mlflow_uri: str) -> None:
    from goldwatch.watchdog.registry.mlflow_backend import MlflowAliasPointer

    with Registry.open(tmp_path / "reg", serving={"fraud": Serving(MlflowAliasPointer(mlflow_uri, "fraud"))}) as reg:
        for i in (1, 2):
            reg.promote("fraud", reg.add("fraud", write_weights(tmp_path / f"s{i}", i)).version, reason="ok")
    script = (
        "import sys\n"
        "from goldwatch.watchdog.registry import Registry, Serving\n"
        "from goldwatch.watchdog.registry.mlflow_backend import MlflowAliasPointer\n"
        "reg = Registry.open(sys.argv[1], serving={'fraud': Serving(MlflowAliasPointer(sys.argv[2], 'fraud'))})\n"
        "reg.rollback('fraud', reason='crash test')\n"
    )
    env = {**os.environ, CRASH_ENV: "rollback:switched"}
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", script, str(tmp_path / "reg"), mlflow_uri],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    pointer = MlflowAliasPointer(mlflow_uri, "fraud")
    with Registry.open(tmp_path / "reg", serving={"fraud": Serving(pointer)}) as reg:
        assert [a.outcome for a in reg.recovered] == ["completed"]
        assert reg.serving_target("fraud")[0] == "1"
        assert reg.get("fraud", "2").state == "quarantined"
        assert str(pointer.read().source) == reg.serving_target("fraud")[1]
