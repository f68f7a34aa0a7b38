"""``goldwatch golden``: build golden sets, replay them, and write example models with a golden set.

Exit codes: 0 every check passed, 1 a check failed (the model answers differently), 2 bad input, an unreachable
server or a missing dependency. Heavy libraries are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from goldwatch.cli._common import emit_json, finish, guarded, json_option, state
from goldwatch.cli._grammar import deprecated_alias
from goldwatch.errors import InvalidInputError

DEVICE = click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
BATCH = click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Samples per inference call.")


def _roles(values: tuple[str, ...]) -> dict[str, str]:
    roles = {}
    for item in values:
        name, sep, role = item.partition("=")
        if not sep or not name or not role:
            raise InvalidInputError(
                f"expected OUTPUT=ROLE, got {item!r}", where="--role", hint="e.g. --role logits=scores"
            )
        roles[name] = role
    return roles


def output_map_option(values: tuple[str, ...]) -> dict[str, str]:
    """``MODEL_OUTPUT=GOLDEN_OUTPUT`` pairs of ``--output-map``."""
    mapping: dict[str, str] = {}
    for item in values:
        model, sep, golden_name = item.partition("=")
        if not sep or not model or not golden_name:
            raise InvalidInputError(
                f"expected MODEL_OUTPUT=GOLDEN_OUTPUT, got {item!r}", where="--output-map",
                hint="e.g. --output-map output=embedding",
            )
        mapping[model] = golden_name
    return mapping


OUTPUT_MAP = click.option(
    "--output-map", "output_map", multiple=True, metavar="MODEL_OUTPUT=GOLDEN_OUTPUT",
    help="The model output that answers for a golden output of another name (repeatable). A single-output model "
         "needs none: it is matched by position.",
)


def _print_checks(checks: Any) -> None:
    for check in checks:
        mark = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skip": "skip"}[check.status]
        click.echo(f"  {mark:5} {check.name}: {check.summary}")


@click.group()
def golden() -> None:
    """Golden sets: capture a model's approved answers, and replay them to prove it still gives them."""


@golden.command("build")
@click.option("--model", "model", required=True, help="Model file/directory (.onnx, .pt, .pt2, dir) or OIP v2 URL.")
@click.option("--inputs", "inputs", required=True, type=click.Path(dir_okay=False),
              help=".npz/.npy/.csv/.parquet; with --tokenizer, texts: .txt (one per line) or a .csv/.parquet column")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Golden set directory to write.")
@click.option("--labels", type=click.Path(dir_okay=False), default=None, help="Optional class labels, one per sample.")
@DEVICE
@click.option("--repeats", type=click.IntRange(min=1), default=None, help="Runs per device (default: config, 5).")
@click.option("--safety-factor", type=click.FloatRange(min=1.0), default=None, help="Noise multiplier (default 4).")
@click.option("--role", "roles", multiple=True, metavar="OUTPUT=ROLE",
              help="scores (class scores: top-1/top-k/labels), embedding (vectors: cosine) or tensor (values only); "
                   "default: guessed from the evidence and printed. Repeatable.")
@BATCH
@click.option("--overwrite", is_flag=True, help="Replace an existing golden set directory.")
@click.option("--tokenizer", type=click.Path(exists=True), default=None, metavar="DIR",
              help="Hugging Face tokenizer folder (tokenizer.json): INPUTS are texts, tokenized into the model's "
                   "input_ids/attention_mask/token_type_ids (needs goldwatch[text]).")
@click.option("--max-length", type=click.IntRange(min=1), default=None,
              help="With --tokenizer: truncate and pad every text to this many tokens (default: the longest).")
@json_option
@guarded
def build(
    model: str, inputs: str, out: str, labels: str | None, device: str, repeats: int | None,
    safety_factor: float | None, roles: tuple[str, ...], batch_size: int | None, overwrite: bool,
    tokenizer: str | None, max_length: int | None, as_json: bool,
) -> None:
    """Run MODEL on INPUTS, store the answers and tolerances calibrated from repeated runs."""
    from goldwatch.golden_sets import build_golden_set
    from goldwatch.runtimes.torch import trusting_factories

    config = state().config
    cfg = config.golden
    with trusting_factories(config.runtimes.trusted_factories):
        golden_set = build_golden_set(
            model, inputs, out, labels=labels, device=device, repeats=repeats or cfg.repeats,
            safety_factor=safety_factor or cfg.safety_factor, roles=_roles(roles),
            batch_size=batch_size or cfg.batch_size or None, overwrite=overwrite, tokenizer=tokenizer,
            max_length=max_length,
        )
    if as_json:
        emit_json(golden_set)
        return
    click.echo(f"golden set: {out} ({golden_set.n_samples} samples, model {golden_set.model.source})")
    click.echo(f"  digest {golden_set.digest} (pin it: --golden {out}@{golden_set.digest})")
    guesses = golden_set.provenance.get("roles", {})
    for name, tol in golden_set.tolerances.items():
        d = tol.derivation
        role = golden_set.roles[name]
        click.echo(
            f"  {name} [{role}]: atol {tol.atol:.3g}, rtol {tol.rtol:.3g} "
            f"(observed noise {d.get('observed_max_abs', 0):.3g} on {', '.join(d.get('devices', []))}; "
            f"bound by {d.get('bound_by')})"
        )
        guess = guesses.get(name) or {}
        if guess and not guess.get("overridden"):
            others = "|".join(r for r in ("scores", "embedding", "tensor") if r != role)
            click.echo(f"    role {role} guessed: {guess.get('evidence')}; if wrong, rebuild with "
                       f"--role {name}={others}")


@golden.command("replay")
@click.option("--model", "model", required=True, help="Model file/directory or OIP v2 URL to check.")
@click.option("--golden", "golden_dir", required=True, metavar="DIR",
              help="Golden set directory; DIR@sha256:HEX also pins its digest (printed by golden build): a golden "
                   "set whose manifest differs is refused.")
@deprecated_alias("--golden-digest", target="golden_digest", replacement="--golden DIR@sha256:HEX",
                  metavar="sha256:HEX")
@DEVICE
@click.option("--cross-device", is_flag=True, help="Also replay on the other device (CUDA) and compare the two.")
@BATCH
@OUTPUT_MAP
@json_option
@guarded
def replay_cmd(
    model: str, golden_dir: str, device: str, cross_device: bool, batch_size: int | None,
    output_map: tuple[str, ...], as_json: bool, golden_digest: str | None = None,
) -> None:
    """Replay a golden set through MODEL. Exit 0 if every answer is within tolerance, 1 if not, 2 on error."""
    from goldwatch.golden_sets import replay
    from goldwatch.golden_sets.format import check_digest_spelling, split_pinned
    from goldwatch.runtimes.torch import trusting_factories

    folder, pinned = split_pinned(golden_dir)
    if pinned is not None and golden_digest is not None and pinned != check_digest_spelling(golden_digest):
        raise InvalidInputError("two different digests pin the golden set", where="--golden",
                                hint="give the digest once: --golden DIR@sha256:HEX")
    golden_digest = pinned or golden_digest
    config = state().config
    cfg = config.golden
    with trusting_factories(config.runtimes.trusted_factories):
        report = replay(
            model, folder, device=device, cross_device=cross_device,
            batch_size=batch_size or cfg.batch_size or None, min_top1_agreement=cfg.min_top1_agreement,
            min_cosine=cfg.min_cosine, drift_alpha=cfg.drift_alpha or None, drift_min_effect=cfg.drift_min_effect,
            golden_digest=golden_digest, output_map=output_map_option(output_map),
        )
    if as_json:
        emit_json(report)
    else:
        counts = report.counts()
        verdict = "PASS" if report.ok else "FAIL"
        click.echo(
            f"{verdict}: {model} on {report.device} vs {golden_dir} ({report.n_samples} samples): "
            f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped"
        )
        _print_checks(report.checks)
    finish(report.ok)


@golden.command("example")
@click.argument("kind", type=click.Choice(["tabular", "conv", "encoder"]))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Directory to write into.")
@click.option("--seed", type=int, default=0, show_default=True, help="Weight-initialisation seed.")
@click.option("--repeats", type=click.IntRange(min=1), default=None, help="Runs when calibrating (default 5).")
@click.option("--fp16", is_flag=True, help="encoder: the same model with every weight rounded to fp16.")
@json_option
@guarded
def example(kind: str, out: str, seed: int, repeats: int | None, fp16: bool, as_json: bool) -> None:
    """Write an example KIND model, its inputs and a golden set: a trained tabular or conv classifier (ONNX +
    TorchScript + state dict, labels), or a 384-d sentence encoder with random weights (ONNX, TorchScript, .pt2,
    state dict, a sharded checkpoint, sentences and a tokenizer)."""
    from goldwatch.examples import write_example
    from goldwatch.golden_sets import build_golden_set

    cfg = state().config.golden
    if kind == "encoder":
        _encoder_example(out, seed=seed, fp16=fp16, repeats=repeats or cfg.repeats, as_json=as_json)
        return
    if fp16:
        raise InvalidInputError("--fp16 applies to the encoder example only", where="--fp16")
    art = write_example(kind, out, seed=seed)
    golden_dir = Path(out) / "golden"
    assert art.onnx is not None
    golden_set = build_golden_set(
        art.onnx, art.inputs, golden_dir, labels=art.labels, repeats=repeats or cfg.repeats,
        safety_factor=cfg.safety_factor, overwrite=True,
    )
    if as_json:
        emit_json({"example": art, "golden": golden_dir, "n_samples": golden_set.n_samples})
        return
    click.echo(f"example {kind!r} (seed {seed}, held-out accuracy {art.accuracy:.3f}) written to {out}:")
    for fmt, path in art.models.items():
        click.echo(f"  {fmt:12} {path}")
    click.echo(f"  {'inputs':12} {art.inputs}\n  {'labels':12} {art.labels}\n  {'golden':12} {golden_dir}")
    click.echo(f"try: goldwatch golden replay --model {art.onnx} --golden {golden_dir}")


def _encoder_example(out: str, *, seed: int, fp16: bool, repeats: int, as_json: bool) -> None:
    from goldwatch.examples.encoder import write_sentence_encoder
    from goldwatch.golden_sets import build_golden_set

    cfg = state().config.golden
    art = write_sentence_encoder(out, seed=seed, fp16=fp16)
    golden_dir = Path(out) / "golden"
    golden_set = build_golden_set(art.onnx, art.inputs, golden_dir, repeats=repeats,
                                  safety_factor=cfg.safety_factor, overwrite=True)
    if as_json:
        emit_json({"example": art, "golden": golden_dir, "n_samples": golden_set.n_samples})
        return
    what = "fp16-rounded copy of the " if fp16 else ""
    click.echo(f"example 'encoder' ({what}384-d sentence encoder, seed {seed}, random weights) written to {out}:")
    for fmt, path in art.models.items():
        click.echo(f"  {fmt:12} {path}")
    click.echo(f"  {'inputs':12} {art.inputs}\n  {'sentences':12} {art.sentences}")
    if art.tokenizer is not None:
        click.echo(f"  {'tokenizer':12} {art.tokenizer}")
    click.echo(f"  {'golden':12} {golden_dir}")
    click.echo(f"try: goldwatch golden replay --model {art.models.get('torchscript', art.onnx)} --golden {golden_dir}")
