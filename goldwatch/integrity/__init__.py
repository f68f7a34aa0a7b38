"""Weights integrity: file digests and one tensor fingerprint that is bit-identical on CPU and CUDA.

* :func:`build_manifest` / :class:`ArtifactManifest` -- per-file SHA-256 (or BLAKE3 / XXH3-128) digests and
  per-tensor, per-1 MiB-block fingerprints of a model file or directory (safetensors, ONNX with external data,
  torch checkpoints read with ``weights_only=True``, any other file by digest).
* :func:`verify_artifact` -- check files on disk; :func:`verify_tensors` / :func:`verify_module` -- check weights
  resident in memory, on their own device, without a host copy. Both return an :class:`IntegrityReport` whose
  ``mismatches`` name the file, tensor and byte range.
* :mod:`goldwatch.integrity.fingerprint` -- the fingerprint's definition and the proof of its properties.
* Sharded weights: :func:`partial_from_slice` / :func:`partial_from_bytes` fingerprint a shard (a tensor-parallel
  slice, a byte range; on its GPU or from its file) into a :class:`PartialFingerprint`; :func:`merge_partials`
  adds them after proving byte coverage; :func:`verify_sharded` does it across ``torch.distributed`` ranks
  (:mod:`goldwatch.integrity.ranks`); DCP directories and safetensors shards + index are manifests like any
  directory (:mod:`goldwatch.integrity.sharded`).

Importing this package imports numpy only; torch, onnx and triton are imported when a tensor of theirs is used.
"""

from typing import Any

from goldwatch.integrity.digest import file_digest
from goldwatch.integrity.fingerprint import BLOCK_BYTES, TensorFingerprint
from goldwatch.integrity.fingerprint_numpy import fingerprint_array, fingerprint_buffer
from goldwatch.integrity.manifest import ArtifactManifest, FileEntry, TensorEntry, build_manifest
from goldwatch.integrity.partial import PartialFingerprint, merge_partials, partial_from_bytes, partial_from_slice
from goldwatch.integrity.ranks import ByteShard, TensorShard, shard_partials, verify_partials, verify_sharded
from goldwatch.integrity.resident import fingerprint_module, fingerprint_state_dict, verify_module
from goldwatch.integrity.verify import IntegrityReport, Mismatch, fingerprint_any, verify_artifact, verify_tensors

__all__ = [
    "BLOCK_BYTES",
    "ArtifactManifest",
    "ByteShard",
    "FileEntry",
    "IntegrityReport",
    "Mismatch",
    "PartialFingerprint",
    "TensorEntry",
    "TensorFingerprint",
    "TensorShard",
    "build_manifest",
    "file_digest",
    "fingerprint_any",
    "fingerprint_array",
    "fingerprint_buffer",
    "fingerprint_module",
    "fingerprint_state_dict",
    "fingerprint_tensor",
    "merge_partials",
    "partial_from_bytes",
    "partial_from_slice",
    "shard_partials",
    "verify_artifact",
    "verify_module",
    "verify_partials",
    "verify_sharded",
    "verify_tensors",
]


def fingerprint_tensor(tensor: Any, *, backend: str = "auto") -> TensorFingerprint:
    """Fingerprint a torch tensor on its device (lazy wrapper: torch is imported only when called)."""
    from goldwatch.integrity.fingerprint_torch import fingerprint_tensor as _impl

    return _impl(tensor, backend=backend)  # type: ignore[arg-type]
