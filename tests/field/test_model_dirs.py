"""Finding 5: a model directory holding a published checkpoint -- unused keys, sharded weights, full key lists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from goldwatch.errors import ArtifactError
from goldwatch.examples.encoder import EncoderArtifacts
from goldwatch.runtimes import DESCRIPTOR_NAME, load_model


def _copy(encoder: EncoderArtifacts, tmp_path: Path, **changes: object) -> Path:
    target = tmp_path / "checkpoint"
    shutil.copytree(encoder.models["checkpoint"], target)
    desc = json.loads((target / DESCRIPTOR_NAME).read_text())
    for key, value in changes.items():
        if value is None:
            desc.pop(key, None)
        else:
            desc[key] = value
    (target / DESCRIPTOR_NAME).write_text(json.dumps(desc))
    return target


def _inputs(encoder: EncoderArtifacts) -> dict[str, np.ndarray]:
    with np.load(encoder.inputs) as data:
        return {k: data[k] for k in data.files}


def test_sharded_checkpoint_with_declared_unused_keys_loads_and_answers_like_onnx(encoder: EncoderArtifacts) -> None:
    folder = encoder.models["checkpoint"]
    assert (folder / "model.safetensors.index.json").is_file()
    assert len(list(folder.glob("model-*-of-00002.safetensors"))) == 2
    x = _inputs(encoder)
    got = load_model(folder).run(x)["embedding"]
    want = load_model(encoder.onnx).run(x)["embedding"]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_strict_loading_names_every_missing_and_unexpected_key(encoder: EncoderArtifacts, tmp_path: Path) -> None:
    folder = _copy(encoder, tmp_path, ignore_keys=None)
    with pytest.raises(ArtifactError) as info:
        load_model(folder)
    text = str(info.value)
    for key in ("pooler.dense.weight", "pooler.dense.bias", "embeddings.position_ids"):
        assert key in text
    assert "3 unexpected key(s)" in text
    assert '"ignore_keys": [' in text  # the fix, spelled out
    assert '"pooler.*"' in text
    assert '"embeddings.position_ids"' in text
    assert "\n" not in text


def test_strict_false_relaxes_unexpected_keys_but_never_missing_ones(encoder: EncoderArtifacts,
                                                                       tmp_path: Path) -> None:
    folder = _copy(encoder, tmp_path, ignore_keys=None, strict=False)
    assert load_model(folder).run(_inputs(encoder))["embedding"].shape == (128, 384)
    index = folder / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    dropped = [k for k in data["weight_map"] if k.startswith("encoder.layer.0.attention.self.query")]
    for key in dropped:
        del data["weight_map"][key]
    index.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="holds tensor"):
        load_model(folder)  # the shard holds what the index no longer maps: the two do not belong together


def test_missing_keys_are_listed_in_full(encoder: EncoderArtifacts, tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    folder = tmp_path / "model"
    shutil.copytree(encoder.models["state_dict"], folder)
    state = load_file(str(folder / "weights.safetensors"))
    gone = sorted(k for k in state if k.startswith("encoder.layer.0.output."))
    save_file({k: v for k, v in state.items() if k not in gone}, str(folder / "weights.safetensors"))
    with pytest.raises(ArtifactError) as info:
        load_model(folder)
    text = str(info.value)
    assert f"{len(gone)} missing key(s): " in text
    assert all(key in text for key in gone)


def test_bad_strictness_options_are_named(encoder: EncoderArtifacts, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="'strict' must be true or false"):
        load_model(_copy(encoder, tmp_path, strict="no"))
    shutil.rmtree(tmp_path / "checkpoint")
    with pytest.raises(ArtifactError, match="'ignore_keys' must be a list"):
        load_model(_copy(encoder, tmp_path, ignore_keys="pooler.*"))
