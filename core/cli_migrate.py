"""``veltrix export | import | diff | migrate``: moving configuration between stores.

Registered on :data:`veltrix.cli.app` by one import at the bottom of ``veltrix.cli``.
Exit codes beyond those of :data:`veltrix.cli.EXIT_CODES`: 13 when pre-flight finds
keys the destination cannot hold (nothing written), 6 when keys were left alone
because they changed in the destination (conflicts), 14 when writes failed or the
read-back verification found a mismatch.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from veltrix import cli, errors
from veltrix.backend import Entry
from veltrix.cli import MASK, JsonOption, RevealOption, SecretOption, err, fail, out
from veltrix.urls import redact_url

EXIT_UNREPRESENTABLE = 13
EXIT_CONFLICTS = 6
EXIT_FAILED = 14
#: ``diff``: the stores differ (like diff(1)); an error that would exit 1 exits 12 there.
EXIT_DIFFERENT = 1
EXIT_OTHER_ERROR = 12

PrefixOption = Annotated[
    str, typer.Option("--prefix", "-p", help="Only keys at or below this prefix.")
]
SrcArgument = Annotated[
    str, typer.Argument(help="Source store URL (or a snapshot file).", metavar="SOURCE")
]
DstArgument = Annotated[
    str | None,
    typer.Argument(
        help="Destination store URL (default: VELTRIX_URL).",
        metavar="[DESTINATION]",
        envvar="VELTRIX_URL",
        show_envvar=False,
    ),
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Plan and pre-flight only; write nothing.")
]
DeleteOption = Annotated[
    bool,
    typer.Option("--delete-extraneous", help="Delete destination keys absent from the source."),
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Overwrite keys changed in the destination meanwhile.")
]
SkipOption = Annotated[
    bool,
    typer.Option(
        "--skip-unrepresentable", help="Skip keys the destination cannot hold instead of stopping."
    ),
]
StateOption = Annotated[
    Path | None,
    typer.Option("--state", help="Resume file: records progress; rerun with it after a crash."),
]
ConcurrencyOption = Annotated[
    int, typer.Option("--concurrency", "-j", min=1, max=256, help="Parallel writers.")
]
NoVerifyOption = Annotated[
    bool, typer.Option("--no-verify", help="Skip reading the destination back.")
]


def _shown(value: bytes, secret: bool, reveal: bool, width: int = 60) -> str:
    if secret and not reveal:
        return MASK
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(value)} bytes, binary>"
    if not text.isprintable():
        text = json.dumps(text)[1:-1]
    return text if len(text) <= width else text[: width - 3] + "..."


# -- export / import ---------------------------------------------------------------------------


def export(
    url: Annotated[
        str | None,
        typer.Argument(
            help="Store URL to export (default: VELTRIX_URL).",
            metavar="[URL]",
            envvar="VELTRIX_URL",
            show_envvar=False,
        ),
    ] = None,
    prefix: PrefixOption = "",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Snapshot file (default: stdout).")
    ] = None,
) -> None:
    """Write the keys of URL (under --prefix) to a snapshot file (JSON Lines)."""
    from veltrix.migration import _list
    from veltrix.registry import open_backend
    from veltrix.snapshot import save_snapshot, write_snapshot

    try:
        url = _required_url(url, "the store to export")
        backend = open_backend(cli.read_only(url))
        try:
            from veltrix.keys import normalize_prefix

            canonical = normalize_prefix(prefix)
            entries = list(_list(backend, canonical, "export").values())
        finally:
            backend.close()
        if output is None or str(output) == "-":
            header = write_snapshot(sys.stdout.buffer, entries, source=url, prefix=canonical)
            sys.stdout.flush()
        else:
            header = save_snapshot(output, entries, source=url, prefix=canonical)
    except errors.VeltrixError as exc:
        fail(exc)
    secrets = sum(1 for e in entries if e.secret)
    where = "stdout" if output is None or str(output) == "-" else str(output)
    err.print(
        f"exported {cli.plural(header.count, 'key')} from {redact_url(url)} to {where}"
        + (f" ({secrets} flagged secret: keep the file private)" if secrets else ""),
        markup=False,
    )


def import_(
    first: Annotated[
        str,
        typer.Argument(
            help="Destination store URL (default: VELTRIX_URL), then the snapshot file.",
            metavar="[URL] FILE",
        ),
    ],
    second: Annotated[str | None, typer.Argument(hidden=True, metavar="")] = None,
    dry_run: DryRunOption = False,
    delete_extraneous: DeleteOption = False,
    force: ForceOption = False,
    skip_unrepresentable: SkipOption = False,
    state: StateOption = None,
    concurrency: ConcurrencyOption = 8,
    no_verify: NoVerifyOption = False,
    as_json: JsonOption = False,
) -> None:
    """Write the snapshot FILE ('-' = stdin) into URL, all checked before anything is written."""
    from veltrix.snapshot import SnapshotBackend, read_snapshot

    given_url, file = (first, Path(second)) if second is not None else (None, Path(first))
    try:
        url = _required_url(given_url or os.environ.get("VELTRIX_URL"), "the destination")
        snapshot = read_snapshot(file)
    except errors.VeltrixError as exc:
        fail(exc)
    source = SnapshotBackend(snapshot, str(file))
    _run_migration(
        source,
        url,
        snapshot.header.prefix,
        dry_run=dry_run,
        delete_extraneous=delete_extraneous,
        force=force,
        skip_unrepresentable=skip_unrepresentable,
        state=state,
        concurrency=concurrency,
        verify=not no_verify,
        as_json=as_json,
        secret_prefix=None,
    )


def _required_url(url: str | None, what: str) -> str:
    if not url:
        raise errors.ConfigurationError(f"no store URL for {what}: give it or set VELTRIX_URL")
    return url


def _read_only_source(source: str) -> str:
    """A store URL opened so that nothing is created (:func:`veltrix.cli.read_only`); a
    snapshot file path as it is."""
    return cli.read_only(source) if "://" in source else source


def _refuse_memory_destination(url: str) -> None:
    """Every memory:// store of a ``veltrix`` process ends with it: writing there keeps nothing."""
    if url.strip().lower().startswith("memory:"):
        raise errors.ConfigurationError(
            f"{redact_url(url)} lives only as long as this veltrix command: nothing written there would be "
            "kept; pick a store that outlives it"
        )


# -- diff --------------------------------------------------------------------------------------


def diff(
    source: SrcArgument,
    destination: DstArgument = None,
    prefix: PrefixOption = "",
    as_json: JsonOption = False,
    reveal: RevealOption = False,
    show_unchanged: Annotated[
        bool, typer.Option("--unchanged", help="List unchanged keys too.")
    ] = False,
    secret_prefix: SecretOption = None,
) -> None:
    """Compare two stores: created / changed / unchanged / only in destination.

    Exits like diff(1): 0 when the stores hold the same keys and values under the
    prefix, 1 when they differ, 2 or more on an error (see the error codes)."""
    from veltrix.migration import diff as plan_diff

    try:
        plan = plan_diff(
            _read_only_source(source),
            cli.read_only(_required_url(destination, "the destination")),
            prefix,
            secret_prefixes=cli.secret_prefixes(secret_prefix),
        )
    except errors.VeltrixError as exc:
        _fail_not_one(exc)
    src, dst = plan.source_entries, plan.dest_entries

    def value(entry: Entry) -> str:
        return _shown(entry.value, entry.key in plan.secret_keys, reveal)

    rows: list[dict[str, Any]] = []
    for key in plan.created:
        rows.append({"status": "created", "key": key, "new": value(src[key])})
    for key in plan.updated:
        rows.append(
            {"status": "changed", "key": key, "old": value(dst[key]), "new": value(src[key])}
        )
    for key in plan.extraneous:
        rows.append({"status": "only in destination", "key": key, "old": value(dst[key])})
    if show_unchanged:
        rows.extend({"status": "unchanged", "key": key} for key in plan.unchanged)
    rows.sort(key=lambda r: r["key"])
    for row in rows:
        row["secret"] = row["key"] in plan.secret_keys
    counts = {
        "created": len(plan.created),
        "changed": len(plan.updated),
        "unchanged": len(plan.unchanged),
        "only_in_destination": len(plan.extraneous),
    }
    differ = EXIT_DIFFERENT if plan.changes or plan.extraneous else 0
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "source": plan.source,
                    "destination": plan.destination,
                    "prefix": plan.prefix,
                    "counts": counts,
                    "unrepresentable": [p.__dict__ for p in plan.unrepresentable],
                    "differences": rows,
                }
            )
        )
        raise typer.Exit(differ)
    table = Table(title=f"{plan.source} -> {plan.destination}")
    for column in ("status", "key", "destination", "source"):
        table.add_column(column, overflow="fold")
    for row in rows:
        cells = (row["status"], row["key"], row.get("old", ""), row.get("new", ""))
        table.add_row(*(Text(cell) for cell in cells))  # a value's "[b]" is not markup
    out.print(table)
    out.print(
        f"created {counts['created']}, changed {counts['changed']}, unchanged "
        f"{counts['unchanged']}, only in destination {counts['only_in_destination']}",
        markup=False,
    )
    for problem in plan.unrepresentable:
        out.print(
            f"cannot be stored in the destination: {problem.key}: {problem.reason}", markup=False
        )
    raise typer.Exit(differ)


def _fail_not_one(exc: errors.VeltrixError) -> NoReturn:
    """:func:`veltrix.cli.fail`, except that exit code 1 means "the stores differ" here:
    an error that would exit 1 exits :data:`EXIT_OTHER_ERROR` instead."""
    code = cli.exit_code(exc)
    err.print(cli.message(exc), markup=False)
    raise typer.Exit(EXIT_OTHER_ERROR if code == 1 else code)


# -- migrate -----------------------------------------------------------------------------------


def migrate(
    source: SrcArgument,
    destination: DstArgument = None,
    prefix: PrefixOption = "",
    dry_run: DryRunOption = False,
    delete_extraneous: DeleteOption = False,
    force: ForceOption = False,
    skip_unrepresentable: SkipOption = False,
    state: StateOption = None,
    concurrency: ConcurrencyOption = 8,
    no_verify: NoVerifyOption = False,
    as_json: JsonOption = False,
    secret_prefix: SecretOption = None,
) -> None:
    """Copy keys from SOURCE to DESTINATION: pre-flight, CAS writes, verify, resume."""
    try:
        destination = _required_url(destination, "the destination")
    except errors.VeltrixError as exc:
        fail(exc)
    _run_migration(
        _read_only_source(source),
        destination,
        prefix,
        dry_run=dry_run,
        delete_extraneous=delete_extraneous,
        force=force,
        skip_unrepresentable=skip_unrepresentable,
        state=state,
        concurrency=concurrency,
        verify=not no_verify,
        as_json=as_json,
        secret_prefix=secret_prefix,
    )


def _run_migration(
    source: Any,
    destination: str,
    prefix: str,
    *,
    dry_run: bool,
    delete_extraneous: bool,
    force: bool,
    skip_unrepresentable: bool,
    state: Path | None,
    concurrency: int,
    verify: bool,
    as_json: bool,
    secret_prefix: list[str] | None,
) -> None:
    from veltrix import migration

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def on_progress(event: migration.Progress) -> None:
        if event.phase in ("plan", "done"):
            return
        if event.phase not in tasks:
            if not event.total:  # nothing to write or verify: no empty bar
                return
            if not tasks:  # started at the first bar: an unused one prints a blank line
                bar.start()
            label = "writing" if event.phase == "apply" else "verifying"
            tasks[event.phase] = bar.add_task(label, total=event.total or None, detail="")
        detail = ""
        if event.phase == "apply":
            detail = f"written {event.written}"
            if event.conflicts:
                detail += f", conflicts {event.conflicts}"
            if event.failed:
                detail += f", failed {event.failed}"
        bar.update(
            tasks[event.phase], completed=event.done, total=event.total or None, detail=detail
        )

    try:
        _refuse_memory_destination(destination)
        try:
            report = migration.migrate(
                source,
                destination,
                prefix=prefix,
                dry_run=dry_run,
                delete_extraneous=delete_extraneous,
                force=force,
                skip_unrepresentable=skip_unrepresentable,
                state=state,
                concurrency=concurrency,
                verify=verify,
                secret_prefixes=cli.secret_prefixes(secret_prefix),
                progress=on_progress,
            )
        finally:
            if tasks:
                bar.stop()
    except migration.UnrepresentableError as exc:
        if as_json:
            out.print_json(
                json.dumps(
                    {
                        "ok": False,
                        "error": "unrepresentable",
                        "problems": [p.__dict__ for p in exc.problems],
                    }
                )
            )
        else:
            err.print(cli.message(exc), markup=False)
            for problem in exc.problems:
                err.print(f"  {problem.key}: {problem.reason}", markup=False)
        raise typer.Exit(EXIT_UNREPRESENTABLE) from exc
    except errors.VeltrixError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        out.print(
            f"{report.source} -> {report.destination}: {report.summary()} in {report.seconds:.2f}s",
            markup=False,
        )
        for warning in report.warnings:
            err.print(f"warning: {warning}", markup=False)
        for kind, problems in (
            ("conflict (changed in the destination; --force overwrites)", report.conflicts),
            ("skipped", report.skipped),
            ("failed", report.failed),
            ("verify failed", report.verify_failures),
        ):
            for problem in problems:
                err.print(f"{kind}: {problem.key}: {problem.reason}", markup=False)
    if report.failed or report.verify_failures:
        raise typer.Exit(EXIT_FAILED)
    if report.conflicts:
        raise typer.Exit(EXIT_CONFLICTS)


def _register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("import")(import_)
    app.command("diff")(diff)
    app.command("migrate")(migrate)


_register(cli.app)
