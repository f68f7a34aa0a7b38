"""``goldwatch fingerprint`` and ``goldwatch verify``: write an artifact manifest, check an artifact against one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from goldwatch import progress
from goldwatch.cli._common import emit_json, finish, guarded, json_option, show_progress, state
from goldwatch.cli._grammar import deprecated_alias

__all__ = ["fingerprint", "verify"]


def _artifact_bytes(path: Path, *, passes: int) -> int:
    """Bytes to read: each file once for its digest, and tensor containers once more for their fingerprints."""
    from goldwatch.integrity.manifest import detect_format

    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
    total = 0
    for file in files:
        size = file.stat().st_size
        total += size * (passes if passes > 1 and detect_format(file) in ("safetensors", "onnx", "torch") else 1)
    return total


@contextmanager
def _byte_progress(path: Path, *, label: str, passes: int) -> Iterator[Callable[[int], None] | None]:
    """A callback advancing a progress task over ``passes`` reads of the artifact's bytes, or None (no progress)."""
    if not show_progress():
        yield None
        return
    with progress.task(f"{label} {path.name}", total=_artifact_bytes(path, passes=passes), unit="B") as task:
        yield task.advance


@click.command("fingerprint")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--out", "output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the manifest here (default: print it on stdout).")
@deprecated_alias("-o", "--output", target="output", replacement="--out FILE",
                  type=click.Path(dir_okay=False, path_type=Path))
@click.option("--digest", type=click.Choice(["sha256", "blake3", "xxh3"]), default="sha256", show_default=True,
              help="File digest: sha256 (= HF LFS oid), or the fast blake3 / xxh3 (XXH3-128).")
@click.option("--dask", "dask_address", default=None, metavar="ADDRESS|local:N",
              help="Fingerprint the files of a directory on a Dask cluster (its workers must see the same files) "
                   "or N local worker processes (default: $GOLDWATCH_DASK, then [dask] address; else threads).")
@json_option
@guarded
def fingerprint(path: Path, output: Path | None, digest: str, dask_address: str | None, as_json: bool) -> None:
    """Write the integrity manifest of a model file or directory.

    Records each file's digest and, for safetensors, ONNX (with external data), torch checkpoints and PyTorch
    Distributed Checkpoint directories, a fingerprint of every tensor per 1 MiB block. A directory's files are
    processed in parallel; sharded checkpoints (safetensors shards + index, DCP) are checked for completeness
    and their tensors merged across shards. Exit 0 on success, 2 if a file is malformed or hostile.
    """
    from goldwatch.cluster import connect, resolve_cluster_spec
    from goldwatch.integrity.manifest import build_manifest

    config = state().config
    spec = resolve_cluster_spec(dask_address, config.dask.address)
    exclude = [output] if output else []
    if spec is not None:
        with connect(spec, memory_limit=config.dask.local_memory_limit,
                     timeout_s=config.dask.connect_timeout_s) as client, client.get_executor() as executor, \
                _byte_progress(path, label="fingerprinting", passes=2) as on_bytes:
            manifest = build_manifest(path, digest=digest, exclude=exclude, executor=executor, on_bytes=on_bytes)
    else:
        with _byte_progress(path, label="fingerprinting", passes=2) as on_bytes:
            manifest = build_manifest(path, digest=digest, on_bytes=on_bytes, exclude=exclude)
    if output is None:
        emit_json(manifest)
        return
    manifest.save(output)
    tensors = sum(len(f.tensors) for f in manifest.files)
    size = sum(f.size for f in manifest.files)
    if as_json:
        emit_json({"manifest": str(output), "files": len(manifest.files), "tensors": tensors, "bytes": size,
                   "digest": digest, "sharding": manifest.sharding})
    else:
        click.echo(f"{output}: {len(manifest.files)} file(s), {tensors} tensor(s), {size} bytes, digest {digest}")
        if manifest.sharding:
            click.echo(f"  sharded ({manifest.sharding['layout']}): {digest} file digests are per file and do not "
                       "merge across shards (SHA-256 is sequential); whole tensors are checked by their "
                       "fingerprints, which do")


@click.command("verify")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--manifest", "manifest_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The manifest written by `goldwatch fingerprint`.")
@click.option("--no-locate", is_flag=True, help="Stop at the file digest; do not name the tensor and block.")
@json_option
@guarded
def verify(path: Path, manifest_path: Path, no_locate: bool, as_json: bool) -> None:
    """Check a model file or directory against its manifest.

    Exit 0 when every byte matches, 1 on a mismatch (each printed with file, tensor and byte range), 2 on error.
    """
    from goldwatch.integrity.manifest import ArtifactManifest
    from goldwatch.integrity.verify import verify_artifact

    manifest = ArtifactManifest.load(manifest_path)
    with _byte_progress(path, label="verifying", passes=1) as on_bytes:
        report = verify_artifact(path, manifest, locate=not no_locate, on_bytes=on_bytes, exclude=[manifest_path])
    if as_json:
        emit_json(report)
    elif report.ok:
        click.echo(f"{path}: intact ({report.files_checked} file(s), {report.bytes_checked} bytes, "
                   f"{manifest.digest}, {report.duration_s:.2f} s)")
    else:
        click.echo(f"{path}: {len(report.mismatches)} mismatch(es)")
        for m in report.mismatches:
            click.echo(f"  {m.kind}: {m.message}")
    finish(report.ok)
