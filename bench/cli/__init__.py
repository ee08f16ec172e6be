"""The ``bench`` command line: argument parsing only (the bodies: :mod:`bench.runner`)."""

from __future__ import annotations

import logging
import sys

import click

from bench.cli.commands import COMMANDS
from bench.cli.data import data
from bench.cli.show import show
from bench.cli.trained import COMMANDS as TRAINED
from bench.errors import BenchError


class BenchGroup(click.Group):
    """Turns a user error (BenchError) into one clear message and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BenchError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=BenchGroup)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def cli(verbose: bool) -> None:
    """bench: fair, reproducible benchmarks of person re-identification methods."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


for command in (*COMMANDS, *TRAINED, data, show):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="bench")
