"""The `nplake` typer app: shared options, one-line errors, and the entry point.

Every error a user can cause is one line on stderr with exit code 2; an unexpected (internal)
error is one line too, naming `--debug`, which prints its traceback (exit code 1).
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

import lake as lake_pkg
from lake.location import default_lake_uri
from schemas import NplakeError

app = typer.Typer(
    name="nplake",
    help="A columnar data lake for Neuropixels sessions: ingest NWB files and raw rig sessions, "
    "then ask questions across all sessions with SQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
#: Messages go to stderr, one line each however narrow the terminal or pipe.
err = Console(stderr=True, soft_wrap=True)
#: Whether internal errors show their traceback (`nplake --debug ...` or NPLAKE_DEBUG=1).
DEBUG = {"on": bool(os.environ.get("NPLAKE_DEBUG"))}

LakeOption = Annotated[
    str | None,
    typer.Option(
        "--lake",
        help="Lake folder or s3:// URI. Default: $NPLAKE_LAKE, else ~/.local/share/nplake/lake.",
        show_default=False,
    ),
]
AtOption = Annotated[
    str | None,
    typer.Option(
        "--at",
        help="Read the lake as it was: a version number, a release name or a date-time "
        "(ISO 8601, e.g. 2026-03-01T12:00; local time unless it has an offset).",
        show_default=False,
    ),
]


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of internal errors.")
    ] = False,
) -> None:
    """Options that apply to every command."""
    if debug:
        DEBUG["on"] = True


def open_lake(uri: str | None, at: str | None = None) -> lake_pkg.Lake:
    """The lake `--lake` names (or the default), at `--at` if given."""
    lk = lake_pkg.open(uri or default_lake_uri())
    return lk.at(at) if at is not None else lk


def fail(exc: BaseException) -> None:
    """Print one line for an error and exit: 2 for the user's, 1 for an internal one."""
    if isinstance(exc, typer.Exit | typer.Abort):  # a command's own exit: pass it on
        raise exc
    if isinstance(exc, NplakeError):
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2)
    from lake.storage.errors import describe_os_error, is_storage_error

    if isinstance(exc, OSError) and is_storage_error(exc):
        err.print(f"[red]error:[/] {escape(describe_os_error(exc, 'working'))}", highlight=False)
        raise typer.Exit(2)
    internal(exc)


def internal(exc: BaseException) -> None:
    """Report a bug: one line, or the traceback with --debug; exit code 1."""
    if DEBUG["on"]:
        err.print("".join(traceback.format_exception(exc)), markup=False, highlight=False)
    else:
        line = f"{type(exc).__name__}: {exc}".splitlines()[0]
        err.print(
            f"[red]internal error:[/] {escape(line)} (run with --debug for the traceback, "
            "and please report it)",
            highlight=False,
        )
    raise typer.Exit(1)


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except SystemExit:
        raise
    except BaseException as exc:  # pragma: no cover - commands catch their own
        try:
            fail(exc)
        except typer.Exit as done:
            sys.exit(done.exit_code)
