"""A model directory's ``factory`` runs only from a trusted module: artifacts never choose the code goldwatch runs.

The attack: a descriptor naming ``os:system`` with ``{"command": "touch MARKER"}``. It must be refused before any
import, through ``load_model``, ``goldwatch golden replay`` and ``goldwatch gate``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from goldwatch.cli import main
from goldwatch.errors import ArtifactError, ConfigError
from goldwatch.runtimes import load_model

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

TRUSTED_PKG = "gw_trust_test_models"  # written under tmp_path, put on sys.path by the fixture
LOOKALIKE_PKG = "gw_trust_test_modelsevil"  # shares the text prefix, not the module path
IMPORT_MARKER_PKG = "gw_trust_test_untrusted"  # writes a file when imported


def _write_dir(out: Path, factory: str, kwargs: dict[str, object], state: dict[str, object]) -> Path:
    from safetensors.torch import save_file

    out.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "weights.safetensors"))  # type: ignore[attr-defined]
    (out / "goldwatch-model.json").write_text(json.dumps({
        "format": "goldwatch-model", "version": 1, "factory": factory, "kwargs": kwargs,
        "weights": "weights.safetensors",
        "signature": {"inputs": [{"name": "x", "dtype": "float32", "shape": [None, 8]}],
                      "outputs": [{"name": "logits", "dtype": "float32", "shape": [None, 3]}]},
    }))
    return out


@pytest.fixture
def pkgs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Importable packages: a trusted-to-be factory module, a prefix lookalike, and one that marks its import."""
    site = tmp_path / "site"
    site.mkdir()
    factory_src = (
        "import torch\nfrom os import system\n\n"
        "def build():\n    torch.manual_seed(0)\n    return torch.nn.Linear(8, 3)\n\n"
        "def not_a_module():\n    return {'weight': 1}\n"
    )
    for name in (TRUSTED_PKG, LOOKALIKE_PKG):
        (site / name).mkdir()
        (site / name / "__init__.py").write_text(factory_src)
    marker = tmp_path / "IMPORTED"
    (site / IMPORT_MARKER_PKG).mkdir()
    (site / IMPORT_MARKER_PKG / "__init__.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n\ndef build():\n    return None\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("GOLDWATCH_TRUSTED_FACTORIES", raising=False)
    yield tmp_path
    for name in (TRUSTED_PKG, LOOKALIKE_PKG, IMPORT_MARKER_PKG):
        sys.modules.pop(name, None)


@pytest.fixture
def example_dir(tmp_path: Path) -> Path:
    """A valid directory built from the always-trusted example factory (untrained weights: no training needed)."""
    from goldwatch.examples.models import tabular_mlp

    return _write_dir(tmp_path / "good", "goldwatch.examples.models:tabular_mlp", {}, tabular_mlp().state_dict())


def _evil(tmp_path: Path, good: Path, factory: str = "os:system") -> tuple[Path, Path]:
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "weights.safetensors").write_bytes((good / "weights.safetensors").read_bytes())
    desc = json.loads((good / "goldwatch-model.json").read_text())
    desc.update(factory=factory, kwargs={"command": f"touch {marker}"})
    (evil / "goldwatch-model.json").write_text(json.dumps(desc))
    return evil, marker


def _golden(model: Path, out: Path, **load: object) -> Path:
    from goldwatch.golden_sets import build_golden_set

    inputs = np.random.default_rng(0).normal(size=(32, 8)).astype(np.float32)
    build_golden_set(load_model(model, **load), {"x": inputs}, out, repeats=2)  # type: ignore[arg-type]
    return out


def test_os_system_is_refused_before_anything_runs(example_dir: Path, tmp_path: Path) -> None:
    evil, marker = _evil(tmp_path, example_dir)
    with pytest.raises(ArtifactError) as info:
        load_model(evil)
    err = info.value
    assert "factory 'os:system' is not trusted" in err.what
    assert err.where == str(evil / "goldwatch-model.json")
    assert err.hint is not None
    assert "trusted_factories" in err.hint
    assert "GOLDWATCH_TRUSTED_FACTORIES" in err.hint
    assert not marker.exists()


def test_untrusted_module_is_not_even_imported(pkgs: Path, example_dir: Path) -> None:
    evil, _ = _evil(pkgs, example_dir, factory=f"{IMPORT_MARKER_PKG}:build")
    with pytest.raises(ArtifactError, match="is not trusted"):
        load_model(evil)
    assert IMPORT_MARKER_PKG not in sys.modules
    assert not (pkgs / "IMPORTED").exists()


@pytest.mark.parametrize("factory", [
    f"{LOOKALIKE_PKG}:build",                       # text prefix of a trusted name, another module
    "goldwatch.examplesevil:build",
    "goldwatch.examples.models_x:build",
    "goldwatch.examples:write_example",             # goldwatch.examples itself writes files: not a factory module
    "goldwatch:__import__",
    ".models:build",                                # relative import
])
def test_lookalikes_and_non_factories_are_refused(
    pkgs: Path, example_dir: Path, monkeypatch: pytest.MonkeyPatch, factory: str
) -> None:
    monkeypatch.setenv("GOLDWATCH_TRUSTED_FACTORIES", TRUSTED_PKG)
    evil, marker = _evil(pkgs, example_dir, factory=factory)
    with pytest.raises(ArtifactError, match=r"not trusted|not a module path"):
        load_model(evil)
    assert LOOKALIKE_PKG not in sys.modules
    assert not marker.exists()


def test_reexported_callable_of_a_trusted_module_is_refused(pkgs: Path, example_dir: Path) -> None:
    """``from os import system`` in a trusted module does not make os.system trusted."""
    evil, marker = _evil(pkgs, example_dir, factory=f"{TRUSTED_PKG}:system")
    with pytest.raises(ArtifactError, match="is defined in"):
        load_model(evil, trusted_factories=[TRUSTED_PKG])
    assert not marker.exists()


def test_trusted_by_env_var_and_by_argument(pkgs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = torch.nn.Linear(8, 3).state_dict()
    model = _write_dir(pkgs / "mine", f"{TRUSTED_PKG}:build", {}, state)
    with pytest.raises(ArtifactError, match="not trusted"):
        load_model(model)
    rt = load_model(model, trusted_factories=[TRUSTED_PKG])
    assert set(rt.run({"x": np.ones((2, 8), np.float32)})) == {"logits"}
    monkeypatch.setenv("GOLDWATCH_TRUSTED_FACTORIES", f" other.pkg ,{TRUSTED_PKG},")
    rt = load_model(model)
    np.testing.assert_allclose(
        rt.run({"x": np.ones((1, 8), np.float32)})["logits"][0],
        (state["weight"].sum(dim=1) + state["bias"]).numpy(), rtol=1e-5,
    )
    monkeypatch.setenv("GOLDWATCH_TRUSTED_FACTORIES", "not a module;rm -rf")
    with pytest.raises(ConfigError, match="GOLDWATCH_TRUSTED_FACTORIES"):
        load_model(model)


def test_factory_returning_a_non_module_is_refused(pkgs: Path) -> None:
    model = _write_dir(pkgs / "dict", f"{TRUSTED_PKG}:not_a_module", {}, torch.nn.Linear(8, 3).state_dict())
    with pytest.raises(ArtifactError, match=r"returned dict, not a torch\.nn\.Module"):
        load_model(model, trusted_factories=[TRUSTED_PKG])


def test_bad_kwargs_are_an_artifact_error(example_dir: Path) -> None:
    desc_path = example_dir / "goldwatch-model.json"
    desc = json.loads(desc_path.read_text())
    desc_path.write_text(json.dumps({**desc, "kwargs": {"no_such_arg": 1}}))
    with pytest.raises(ArtifactError, match=r"factory .* failed .*TypeError"):
        load_model(example_dir)
    desc_path.write_text(json.dumps({**desc, "kwargs": ["x"]}))
    with pytest.raises(ArtifactError, match="must be a JSON object"):
        load_model(example_dir)


def test_cli_golden_replay_refuses_the_attack(example_dir: Path, tmp_path: Path) -> None:
    golden = _golden(example_dir, tmp_path / "golden")
    evil, marker = _evil(tmp_path, example_dir)
    result = CliRunner().invoke(main, ["golden", "replay", "--model", str(evil), "--golden", str(golden)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "factory 'os:system' is not trusted" in lines[0]
    assert not marker.exists()


def test_cli_gate_refuses_the_attack(example_dir: Path, tmp_path: Path) -> None:
    golden = _golden(example_dir, tmp_path / "golden")
    evil, marker = _evil(tmp_path, example_dir)
    result = CliRunner().invoke(main, ["gate", "--candidate", str(evil), "--golden", str(golden),
                                       "--latency-repeats", "2"])
    assert result.exit_code == 2, result.output
    assert "factory 'os:system' is not trusted" in result.stderr
    assert not marker.exists()


def test_cli_trusts_the_config_list_for_that_command_only(pkgs: Path) -> None:
    model = _write_dir(pkgs / "mine", f"{TRUSTED_PKG}:build", {}, torch.nn.Linear(8, 3).state_dict())
    golden = _golden(model, pkgs / "golden", trusted_factories=[TRUSTED_PKG])
    args = ["golden", "replay", "--model", str(model), "--golden", str(golden)]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 2
    assert "not trusted" in refused.stderr
    cfg = pkgs / "goldwatch.toml"
    cfg.write_text(f'[runtimes]\ntrusted_factories = ["{TRUSTED_PKG}"]\n')
    result = CliRunner().invoke(main, ["--config", str(cfg), *args])
    assert result.exit_code == 0, result.output
    gated = CliRunner().invoke(main, ["--config", str(cfg), "gate", "--candidate", str(model), "--golden", str(golden),
                                      "--latency-repeats", "2"])
    assert gated.exit_code == 0, gated.output
    with pytest.raises(ArtifactError, match="not trusted"):  # the config's trust ends with the command
        load_model(model)


def test_config_validates_the_prefixes(tmp_path: Path) -> None:
    from goldwatch.config import parse_config

    assert parse_config("").runtimes.trusted_factories == []
    assert parse_config('[runtimes]\ntrusted_factories = ["a.b", "c"]\n').runtimes.trusted_factories == ["a.b", "c"]
    with pytest.raises(ConfigError, match=r"runtimes.trusted_factories\[0\]"):
        parse_config('[runtimes]\ntrusted_factories = ["os:system"]\n')
