"""Decoding bodies in other processes: JSON parsing is most of ingestion's cost, and it holds the GIL.

A process that serves HTTP, pairs events and tests windows spends most of its time parsing request and response
bodies (``orjson`` and the list-to-array conversion: ~50 us for 32 x 20 values), all of it holding the GIL that the
event loop needs to answer the payload logger. :class:`DecodePool` hands batches of bodies to worker processes
(``spawn``: no fork of a threaded process) and gets back compact results -- every numeric tensor of the batch
packed into one float64 buffer, metadata as tuples -- which :func:`unpack` turns back into
:class:`~goldwatch.watchdog.live.payload.Tensors` (views of the buffer) for a few microseconds each.

``[live_drift] decode_processes = 0`` (the default) decodes in the worker thread; 1 moves decoding to another
core (benchmarks/RESULTS.md measures both).

>>> results = decode_many([(b'{"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}]}',
...                         "application/json"), (b"{bad", "application/json")])
>>> t, err = unpack(results)
>>> t.tensors["x"].array.tolist(), err.reason
([[1.0, 2.0], [3.0, 4.0]], 'malformed_json')
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from goldwatch.watchdog.live.payload import PayloadError, Tensor, Tensors, decode_body

__all__ = ["DecodePool", "decode_many", "unpack"]

Packed = tuple[list[Any], np.ndarray]


def decode_many(items: Sequence[tuple[bytes | Mapping[str, Any], str]]) -> Packed:
    """Decode ``(body, content type)`` pairs: per item ``("error", reason, message)`` or
    ``("ok", version, probe, format, [(name, datatype, shape, offset | None, text values | None), ...])``, and one
    buffer holding every numeric tensor."""
    meta: list[Any] = []
    chunks: list[np.ndarray] = []
    offset = 0
    for body, content_type in items:
        try:
            t = decode_body(body, content_type=content_type)
        except PayloadError as exc:
            meta.append(("error", exc.reason, exc.what))
            continue
        entries: list[tuple[str, str, tuple[int, ...], int | None, list[Any] | None]] = []
        for name, tensor in t.tensors.items():
            arr = tensor.array
            if arr.dtype == object:
                entries.append((name, tensor.datatype, arr.shape, None, arr.ravel().tolist()))
            else:
                flat = np.ascontiguousarray(arr, dtype=np.float64).ravel()
                entries.append((name, tensor.datatype, arr.shape, offset, None))
                chunks.append(flat)
                offset += flat.size
        meta.append(("ok", t.version, t.probe, t.format, entries))
    buffer = np.concatenate(chunks) if chunks else np.empty(0)
    return meta, buffer


def unpack(packed: Packed) -> list[Tensors | PayloadError]:
    """The results of :func:`decode_many` as :class:`Tensors` (numeric arrays are views of one buffer) or the
    :class:`PayloadError` each body raised."""
    meta, buffer = packed
    out: list[Tensors | PayloadError] = []
    for item in meta:
        if item[0] == "error":
            out.append(PayloadError(item[1], item[2]))
            continue
        _, version, probe, fmt, entries = item
        tensors = {}
        for name, datatype, shape, offset, text in entries:
            if offset is None:
                arr = np.empty(len(text), dtype=object)
                arr[:] = text
                tensors[name] = Tensor(arr.reshape(shape), datatype)
            else:
                size = int(np.prod(shape))
                tensors[name] = Tensor(buffer[offset: offset + size].reshape(shape), datatype)
        out.append(Tensors(tensors, version=version, probe=probe, format=fmt))
    return out


def _watch_parent(parent: int) -> None:
    """In a worker: exit when the process that started it is gone (killed before it could close the pool)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="goldwatch-decode-parent", daemon=True).start()


class DecodePool:
    """``processes`` worker processes decoding batches of bodies; :meth:`decode` splits a batch among them."""

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError("a decode pool needs at least one process")
        self.processes = int(processes)
        self._pool = ProcessPoolExecutor(max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_watch_parent, initargs=(os.getpid(),))
        # start the processes now (spawning imports numpy: ~1 s), not under the first burst of events
        for _ in range(self.processes):
            self._pool.submit(decode_many, [])

    def decode(self, items: Sequence[tuple[bytes | Mapping[str, Any], str]]) -> list[Tensors | PayloadError]:
        n = len(items)
        step = -(-n // self.processes)
        futures = [self._pool.submit(decode_many, list(items[lo: lo + step])) for lo in range(0, n, step)]
        out: list[Tensors | PayloadError] = []
        for future in futures:
            out += unpack(future.result())
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
