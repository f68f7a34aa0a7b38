"""``goldwatch completion SHELL``: print the shell completion script for bash, zsh or fish.

The script asks ``goldwatch`` itself what to complete (click's completion protocol, ``$_GOLDWATCH_COMPLETE``), so
completion always matches the installed version: commands, options, choices (``--device``, ``--digest``...) and
file paths. Deprecated spellings are not offered.
"""

from __future__ import annotations

import click

from goldwatch.cli._common import guarded

__all__ = ["completion"]

COMPLETE_VAR = "_GOLDWATCH_COMPLETE"

INSTALL = {
    "bash": 'eval "$(goldwatch completion bash)"            # in ~/.bashrc',
    "zsh": 'eval "$(goldwatch completion zsh)"             # in ~/.zshrc, after compinit',
    "fish": "goldwatch completion fish > ~/.config/fish/completions/goldwatch.fish",
}


@click.command("completion")
@click.argument("shell", type=click.Choice(sorted(INSTALL)))
@guarded
def completion(shell: str) -> None:
    """Print the completion script for SHELL on stdout.

    \b
    bash:  eval "$(goldwatch completion bash)"    (in ~/.bashrc)
    zsh:   eval "$(goldwatch completion zsh)"     (in ~/.zshrc, after compinit)
    fish:  goldwatch completion fish > ~/.config/fish/completions/goldwatch.fish
    """
    from click.shell_completion import get_completion_class

    from goldwatch.cli import main

    cls = get_completion_class(shell)
    if cls is None:  # click knows these three; a newer click without one is an environment problem
        raise click.UsageError(f"this version of click has no {shell} completion")
    click.echo(cls(main, {}, "goldwatch", COMPLETE_VAR).source())
