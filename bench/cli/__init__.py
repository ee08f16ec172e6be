"""The ``bench`` command line: argument parsing only (the bodies: :mod:`bench.runner`)."""

from __future__ import annotations

import logging
import os
import sys

import click

from bench.cli.commands import COMMANDS
from bench.cli.data import data
from bench.cli.show import show
from bench.cli.trained import COMMANDS as TRAINED
from bench.errors import DEBUG_ENV, BenchError, debugging, explain


class OneLineUsageError(click.ClickException):
    """A bad flag or argument as one line, ``Error: --flag: what is wrong (bench CMD --help)``,
    with click's exit code for usage errors."""

    exit_code = 2

    def __init__(self, exc: click.UsageError):
        param = getattr(exc, "param", None)
        if isinstance(exc, click.NoSuchOption):
            where, text = exc.option_name, "no such option"
            if exc.possibilities:
                text += f"; did you mean {' or '.join(sorted(exc.possibilities))}?"
        elif isinstance(param, click.Option):
            where, text = max(param.opts, key=len), exc.message
        elif param is not None:
            where, text = param.human_readable_name, exc.message
        else:
            where, text = "", exc.format_message()
        if isinstance(exc, click.MissingParameter):
            text = "missing"
        hint = f" ({exc.ctx.command_path} --help)" if exc.ctx is not None else ""
        line = f"{where}: {text.rstrip('.')}" if where else text.rstrip(".")
        super().__init__(f"{line}{hint}".replace("\n", " "))


class BenchGroup(click.Group):
    """Every command's errors, in one place: a user error (BenchError) and any error of the
    libraries bench uses (SQLAlchemy, MLflow, Optuna, submitit, the filesystem) become one line
    ``Error: ...`` and exit code 1 (:func:`bench.errors.explain` names the store or file and
    what to check); ``bench --debug`` shows the traceback instead. Commands added to the group
    (or to a group under it) are covered without doing anything."""

    def invoke(self, ctx: click.Context):
        before = os.environ.get(DEBUG_ENV)
        if ctx.params.get("debug"):
            os.environ[DEBUG_ENV] = "1"  # the worker processes inherit it
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise OneLineUsageError(exc) from exc
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BenchError as exc:
            raise click.ClickException(str(exc)) from exc
        except Exception as exc:
            if debugging():
                raise
            raise click.ClickException(explain(exc)) from exc
        finally:
            if before is None:
                os.environ.pop(DEBUG_ENV, None)
            else:
                os.environ[DEBUG_ENV] = before


@click.group(cls=BenchGroup)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.option(
    "--debug",
    is_flag=True,
    envvar=DEBUG_ENV,
    help="Show the traceback of an error (default: one line saying what to check).",
)
def cli(verbose: bool, debug: bool) -> None:
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
