"""``python -m goldwatch.reference [--out DIR] [--check]``: the same as ``goldwatch docs generate``."""

from goldwatch.cli.docs import generate

generate(prog_name="python -m goldwatch.reference")
