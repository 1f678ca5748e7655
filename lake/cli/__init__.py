"""The `nplake` command. `app` is the typer app; `main` the console entry point."""

from lake.cli import admin, read, write  # noqa: F401 - each module adds its commands to `app`
from lake.cli.app import app, main

__all__ = ["app", "main"]
