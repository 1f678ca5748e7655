"""Keeping a lake: maintenance and its verbs, repair, and named releases."""

from __future__ import annotations

from typing import Annotated

import typer

from lake.cli.app import LakeOption, app, fail, open_lake
from lake.cli.read import show
from lake.storage.maintenance import RETENTION_HOURS

RetentionOption = Annotated[
    float,
    typer.Option(
        "--retention-hours",
        min=0,
        help="Keep the files of versions younger than this (time travel); releases are kept "
        "whatever it is.",
    ),
]

release_app = typer.Typer(help="Named versions: create, list, delete.", no_args_is_help=True)
app.add_typer(release_app, name="release", rich_help_panel="Keep the lake")


def _run(work) -> None:
    try:
        print(work())
    except Exception as exc:
        fail(exc)


@app.command(rich_help_panel="Keep the lake")
def maintenance(
    lake: LakeOption = None,
    retention_hours: RetentionOption = RETENTION_HOURS,
    optimize: Annotated[
        bool, typer.Option("--optimize/--no-optimize", help="Merge small files.")
    ] = True,
) -> None:
    """Publish, collect garbage, merge small files and vacuum; safe while others ingest."""
    _run(lambda: open_lake(lake).maintenance.run(retention_hours=retention_hours, compact=optimize))


@app.command(rich_help_panel="Keep the lake")
def optimize(lake: LakeOption = None) -> None:
    """Merge the small files of the shared tables (time travel keeps the old ones)."""
    _run(lambda: open_lake(lake).maintenance.optimize())


@app.command(rich_help_panel="Keep the lake")
def vacuum(lake: LakeOption = None, retention_hours: RetentionOption = RETENTION_HOURS) -> None:
    """Delete files only versions older than the retention read (releases keep theirs)."""
    _run(lambda: open_lake(lake).maintenance.vacuum(retention_hours=retention_hours))


@app.command(rich_help_panel="Keep the lake")
def gc(lake: LakeOption = None) -> None:
    """Delete files of failed or killed ingests (never a running ingest's)."""
    _run(lambda: open_lake(lake).maintenance.collect_garbage())


@app.command(rich_help_panel="Keep the lake")
def repair(lake: LakeOption = None) -> None:
    """Rewrite Delta log entries whose statistics are not valid JSON (older nplake wrote some)."""
    _run(lambda: open_lake(lake).maintenance.repair())


@release_app.command("create")
def release_create(
    name: Annotated[str, typer.Argument(help="Release name: letters, digits, '.', '_', '-'.")],
    message: Annotated[str, typer.Option("--message", "-m", help="What this release is.")] = "",
    lake: LakeOption = None,
) -> None:
    """Name the current version (names never move: delete one to replace it)."""

    def work() -> str:
        r = open_lake(lake).release(name, message=message)
        return f"release {r.name} = version {r.version} ({r.sessions} sessions)"

    _run(work)


@release_app.command("list")
def release_list(lake: LakeOption = None) -> None:
    """Every release: name, version, date, sessions, message."""
    show(lambda: open_lake(lake).releases(), max_rows=10_000)


@release_app.command("delete")
def release_delete(
    name: Annotated[str, typer.Argument(help="The release to remove.")],
    lake: LakeOption = None,
) -> None:
    """Remove a release; vacuum may then reclaim the files only it kept."""

    def work() -> str:
        r = open_lake(lake).delete_release(name)
        return f"deleted release {r.name} (was version {r.version})"

    _run(work)
