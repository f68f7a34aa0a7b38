"""CloudEvents envelopes and inference bodies: what is read, and every way a body can be unusable."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from goldwatch.watchdog.live.events import EventError, from_binary, from_structured, parse_time
from goldwatch.watchdog.live.payload import PayloadError, decode_body, extract
from goldwatch.watchdog.live.schema import Column, Schema
from tests.live.support import kserve_headers, lower, rfc3339_nano, seldon_headers, v2_request, v2_response


def test_kserve_binary_event_as_the_agent_sends_it() -> None:
    body = v2_request(np.ones((2, 3)))
    event = from_binary(lower(kserve_headers("5f0c7a9e-1", "request", when=1_700_000_000.25,
                                             annotations={"team": "fraud"})), body)
    assert (event.kind, event.key, event.protocol, event.model) == ("request", "5f0c7a9e-1", "kserve", "fraud")
    assert event.time == pytest.approx(1_700_000_000.25, abs=1e-6)
    assert event.body == body
    assert event.extensions["namespace"] == "default"
    assert event.extensions["component"] == "predictor"
    assert json.loads(event.extensions["metadata"]) == {"X-Request-Id": ["5f0c7a9e-1"]}
    assert json.loads(event.extensions["annotations"]) == {"team": "fraud"}
    assert parse_time(event.extensions["recordedtime"]) > event.time
    assert not event.probe
    probe = from_binary(lower(kserve_headers("goldwatch-7d1e", "response")), b"{}")
    assert probe.probe


def test_rfc3339_nanoseconds_and_offsets() -> None:
    assert parse_time(rfc3339_nano(1_700_000_000.123456789)) == pytest.approx(1_700_000_000.123456789, abs=1e-6)
    assert parse_time("2026-11-28T22:15:33.5+01:00") == parse_time("2026-11-28T21:15:33.5Z")
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_time("yesterday")
    # an unreadable time does not lose the event
    headers = lower(kserve_headers("x", "request"))
    headers["ce-time"] = "not a time"
    assert from_binary(headers, b"{}").time is None


def test_seldon_pairs_by_request_id() -> None:
    req = from_binary(lower(seldon_headers("ce-1", "req-9", "request")), b"{}")
    resp = from_binary(lower(seldon_headers("ce-2", "req-9", "response")), b"{}")
    assert (req.protocol, req.key, resp.key, req.event_id) == ("seldon", "req-9", "req-9", "ce-1")
    assert req.model == "fraud"


def test_structured_mode_with_json_and_base64_data() -> None:
    data = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}
    envelope = {"specversion": "1.0", "id": "e1", "source": "http://x/",
                "type": "org.kubeflow.serving.inference.request", "time": "2026-01-01T00:00:00Z",
                "datacontenttype": "application/json", "inferenceservicename": "m", "data": data}
    event = from_structured(json.dumps(envelope).encode())
    assert (event.kind, event.model, event.time) == ("request", "m", parse_time("2026-01-01T00:00:00Z"))
    assert decode_body(event.body).tensors["x"].array.tolist() == [[1.0, 2.0]]
    envelope.pop("data")
    envelope["data_base64"] = base64.b64encode(json.dumps(data).encode()).decode()
    assert decode_body(from_structured(json.dumps(envelope).encode()).body).n_rows == 1


@pytest.mark.parametrize(("headers", "reason"), [
    ({"ce-id": "1", "ce-type": "org.kubeflow.serving.inference.request", "ce-source": "s"}, "not_cloudevent"),
    ({"ce-id": "1", "ce-type": "org.kubeflow.serving.inference.request", "ce-source": "s", "ce-specversion": "0.3"},
     "not_cloudevent"),
    ({"ce-id": "1", "ce-type": "dev.knative.apiserver.resource.add", "ce-source": "s", "ce-specversion": "1.0"},
     "unknown_type"),
])
def test_envelope_errors_have_a_reason(headers, reason) -> None:
    with pytest.raises(EventError) as info:
        from_binary(headers, b"{}")
    assert info.value.reason == reason
    with pytest.raises(EventError, match="malformed_json"):
        from_structured(b"{not json")


def test_oip_v2_flat_and_nested_data_bytes_and_version() -> None:
    body = {"model_version": 3, "parameters": {"x": 1}, "outputs": [
        {"name": "scores", "shape": [2, 3], "datatype": "FP32", "data": [[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]]},
        {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["cat", "dog"]}]}
    t = decode_body(json.dumps(body).encode())
    assert t.version == "3"
    assert t.format == "v2"
    assert t.n_rows == 2
    schema = Schema.infer([], t.signature())
    assert [c.name for c in schema.outputs] == ["scores[0]", "scores[1]", "scores[2]", "scores:argmax", "label"]
    frame = extract(t, schema.outputs)
    np.testing.assert_allclose(frame.numeric, [[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]])
    assert frame.categorical.tolist() == [["1", "cat"], ["0", "dog"]]


def test_missing_values_as_null_and_as_the_bare_words_python_servers_write() -> None:
    """Strict JSON has no NaN: Go and orjson write null; Python's json module writes NaN / Infinity."""
    for raw in (b'{"inputs": [{"name": "x", "shape": [4], "datatype": "FP64", "data": [1.5, null, 2.5, null]}]}',
                b'{"inputs": [{"name": "x", "shape": [4], "datatype": "FP64", "data": [1.5, NaN, 2.5, Infinity]}]}'):
        array = decode_body(raw).tensors["x"].array
        assert array[[0, 2]].tolist() == [1.5, 2.5]
        assert np.isnan(array[1])
        assert not np.isfinite(array[3])


def test_oip_v1_rows_objects_and_columns() -> None:
    rows = decode_body(b'{"instances": [[1, 2, "a"], [3, null, "b"]]}')  # mixed rows: each column on its own
    assert rows.format == "v1"
    schema = Schema.infer(rows.signature())
    assert [(c.name, c.kind) for c in schema.inputs] == [
        ("instances[0]", "numeric"), ("instances[1]", "numeric"), ("instances[2]", "categorical")]
    frame = extract(rows, [Column("a", tensor="instances", index=1), Column("c", "categorical", "instances", 2)])
    assert frame.numeric[:, 0].tolist()[0] == 2
    assert np.isnan(frame.numeric[1, 0])
    assert frame.categorical[:, 0].tolist() == ["a", "b"]
    objects = decode_body(b'{"instances": [{"age": 30, "plan": "gold"}, {"age": null, "plan": "free"}]}')
    frame = extract(objects, [Column("age"), Column("plan", "categorical")])
    assert np.isnan(frame.numeric[1, 0])
    assert frame.numeric[0, 0] == 30
    assert frame.categorical[:, 0].tolist() == ["gold", "free"]
    preds = decode_body(b'{"predictions": [0.1, 0.9, 0.4]}')
    assert extract(preds, [Column("p")]).numeric[:, 0].tolist() == [0.1, 0.9, 0.4]
    columnar = decode_body(b'{"inputs": {"a": [1, 2], "b": ["x", "y"]}}')
    assert sorted(columnar.tensors) == ["a", "b"]


def test_seldon_ndarray_and_tensor_bodies() -> None:
    named = decode_body(b'{"data": {"names": ["f0", "f1"], "ndarray": [[0.77, 0.63], [0.1, 0.2]]}}')
    assert named.format == "seldon"
    assert named.tensors["f1"].array.tolist() == [0.63, 0.2]
    tensor = decode_body(b'{"data": {"tensor": {"shape": [2, 2], "values": [1, 2, 3, 4]}}}')
    assert tensor.tensors["data"].array.tolist() == [[1, 2], [3, 4]]


def test_goldwatch_probe_parameter_is_recognised() -> None:
    assert decode_body(v2_request(np.ones((1, 2)), parameters={"goldwatch_probe": True})).probe
    assert not decode_body(v2_request(np.ones((1, 2)))).probe


@pytest.mark.parametrize(("body", "content_type", "reason"), [
    (b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]}'
     + np.arange(4, dtype=np.float32).tobytes(), "application/json", "binary_tensor"),
    (b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]}',
     "application/json", "binary_tensor"),
    (np.arange(4, dtype=np.float32).tobytes(), "application/octet-stream", "binary_tensor"),
    (b'{"inputs": [{"name": "x", "shape": [1, 2], "data": [1, 2', "application/json", "malformed_json"),
    (b"\xff\xfe garbage", "application/json", "malformed_json"),
    (b"", "application/json", "empty"),
    (b"[1, 2]", "application/json", "unknown_format"),
    (b'{"foo": 1}', "application/json", "unknown_format"),
    (b'{"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3]}]}', "application/json",
     "wrong_shape"),
    (b'{"inputs": [{"name": "x", "shape": [1, 2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}]}',
     "application/json", "wrong_shape"),
    (b'{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": ["a", "b"]}]}', "application/json",
     "bad_datatype"),
    (b'{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "COMPLEX", "data": [1, 2]}]}', "application/json",
     "bad_datatype"),
    (b'{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32"}]}', "application/json", "missing_tensor"),
    (b'{"instances": [[1, 2], [3]]}', "application/json", "wrong_shape"),
])
def test_unusable_bodies_raise_with_a_countable_reason(body, content_type, reason) -> None:
    with pytest.raises(PayloadError) as info:
        decode_body(body, content_type=content_type)
    assert info.value.reason == reason


def test_a_body_that_does_not_fit_the_schema_is_a_schema_violation() -> None:
    t = decode_body(v2_request(np.ones((2, 3))))
    with pytest.raises(PayloadError) as info:
        extract(t, [Column("a", tensor="other", index=0)])
    assert info.value.reason == "missing_tensor"
    with pytest.raises(PayloadError) as info:
        extract(t, [Column("a", tensor="input-0", index=5)])
    assert info.value.reason == "wrong_shape"
    text = decode_body(b'{"inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}')
    with pytest.raises(PayloadError) as info:
        extract(text, [Column("a", tensor="input-0")])
    assert info.value.reason == "bad_datatype"
    assert v2_response(np.ones((1, 2)))  # the helper builds valid bodies


def test_a_decode_pool_gives_what_the_worker_thread_decodes() -> None:
    """Bodies parsed in a spawned process come back as the same tensors (and the same errors by reason)."""
    from goldwatch.watchdog.live.decoding import DecodePool

    bodies = [(v2_request(np.arange(12.0).reshape(4, 3) + i), "application/json") for i in range(20)]
    bodies += [(b'{"instances": [[1, "a"], [2, "b"]]}', "application/json"), (b"{broken", "application/json")]
    pool = DecodePool(1)
    try:
        decoded = pool.decode(bodies)
    finally:
        pool.close()
    for (body, content_type), got in zip(bodies[:-1], decoded[:-1]):
        want = decode_body(body, content_type=content_type)
        assert sorted(got.tensors) == sorted(want.tensors)
        for name in want.tensors:
            assert got.tensors[name].datatype == want.tensors[name].datatype
            assert got.tensors[name].array.tolist() == want.tensors[name].array.tolist()
    assert isinstance(decoded[-1], PayloadError)
    assert decoded[-1].reason == "malformed_json"
