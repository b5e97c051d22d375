"""The ``veltrix`` command line.

Every command takes ``--url`` (or ``VELTRIX_URL``); without either it uses the
embedded SQLite store. Errors print one line to stderr and exit with a code that
tells them apart (see :data:`EXIT_CODES`), never a traceback. Secret values are
masked unless ``--reveal`` is given.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from veltrix import errors
from veltrix.backend import Absent, Change, Entry
from veltrix.cache import CachePolicy
from veltrix.client import Client
from veltrix.urls import redact_text, redact_url

#: Exit codes, most specific error first (2 is typer's usage error).
EXIT_CODES: list[tuple[type[errors.VeltrixError], int]] = [
    (errors.UnknownBackendError, 3),
    (errors.BackendNotInstalledError, 3),
    (errors.ConfigurationError, 3),
    (errors.InvalidKeyError, 4),
    (errors.KeyNotFoundError, 5),
    (errors.VersionConflictError, 6),
    (errors.BackendUnavailableError, 7),
    (errors.AccessDeniedError, 8),
    (errors.ValueTooLargeError, 9),
    (errors.DecodeError, 10),
    (errors.UnsupportedOperationError, 11),
    (errors.BackendError, 12),
    (errors.VeltrixError, 1),
]
MASK = "********"

app = typer.Typer(
    name="veltrix",
    help="Read, write and watch configuration in any Veltrix store; run the demo.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        "-u",
        envvar="VELTRIX_URL",
        show_envvar=True,
        help="Store URL, e.g. zookeeper://127.0.0.1:2181/app (default: the embedded SQLite store).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
RevealOption = Annotated[bool, typer.Option("--reveal", help="Show secret values unmasked.")]
SecretOption = Annotated[
    list[str] | None,
    typer.Option("--secret-prefix", help="Treat keys under this prefix as secrets (repeatable)."),
]


def exit_code(exc: errors.VeltrixError) -> int:
    return next(code for kind, code in EXIT_CODES if isinstance(exc, kind))


def message(exc: errors.VeltrixError) -> str:
    """The one line printed for ``exc``; any URL credential in it masked (a backstop:
    messages carry redacted URLs already)."""
    return f"error: {redact_text(str(exc))}"


def fail(exc: errors.VeltrixError) -> NoReturn:
    err.print(message(exc), markup=False)
    raise typer.Exit(exit_code(exc))


@contextmanager
def open_client(url: str | None, secret_prefixes: list[str] | None = None) -> Iterator[Client]:
    """A short-lived client (no cache worth keeping, no watch unless asked)."""
    try:
        with Client(
            url, cache=CachePolicy(ttl=0, watch=False), secret_prefixes=secret_prefixes or ()
        ) as client:
            yield client
    except errors.VeltrixError as exc:
        fail(exc)


def _value_fields(client: Client, entry: Entry, reveal: bool) -> dict[str, Any]:
    secret = client.is_secret(entry.key, entry)
    fields: dict[str, Any] = {"secret": secret}
    if secret and not reveal:
        fields["value"] = MASK
        return fields
    try:
        fields["value"] = entry.value.decode("utf-8")
    except UnicodeDecodeError:
        fields["value"] = base64.b64encode(entry.value).decode("ascii")
        fields["encoding"] = "base64"
    return fields


def _entry_json(client: Client, entry: Entry, reveal: bool) -> dict[str, Any]:
    return {
        "key": entry.key,
        **_value_fields(client, entry, reveal),
        "version": entry.version,
        "size": len(entry.value),
        "content_type": entry.content_type,
        "source": entry.source,
    }


@app.command()
def get(
    key: str,
    url: UrlOption = None,
    as_json: JsonOption = False,
    reveal: RevealOption = False,
    secret_prefix: SecretOption = None,
) -> None:
    """Print the value of KEY."""
    with open_client(url, secret_prefix) as client:
        try:
            entry = client.get_entry(key)
            if entry is None:
                raise errors.KeyNotFoundError(f"{key!r} not found in {client.source}")
        except errors.VeltrixError as exc:
            fail(exc)
        if as_json:
            out.print_json(json.dumps(_entry_json(client, entry, reveal)))
            return
        fields = _value_fields(client, entry, reveal)
        if fields.get("encoding") == "base64":
            sys.stdout.buffer.write(entry.value)  # binary values go out as they are
            sys.stdout.flush()
        else:
            out.print(fields["value"], markup=False)


def _read_value(value: str | None, file: Path | None) -> bytes:
    given = [v for v in (value, file) if v is not None]
    if len(given) > 1:
        raise errors.ConfigurationError(
            "give the value as an argument, with --file, or on stdin; not several"
        )
    if file is not None:
        try:
            return file.read_bytes() if str(file) != "-" else sys.stdin.buffer.read()
        except OSError as exc:
            raise errors.ConfigurationError(f"cannot read {file}: {exc.strerror}") from exc
    if value is not None:
        return value.encode("utf-8")
    if sys.stdin.isatty():
        raise errors.ConfigurationError(
            "no value given: pass VALUE, --file FILE, or pipe it on stdin"
        )
    return sys.stdin.buffer.read()


@app.command()
def put(
    key: str,
    value: Annotated[str | None, typer.Argument(help="The value; omit it to read stdin.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the value from FILE ('-' = stdin).")
    ] = None,
    if_version: Annotated[
        str | None, typer.Option(help="Write only if KEY is at this version.")
    ] = None,
    create_only: Annotated[
        bool, typer.Option("--create-only", help="Write only if KEY does not exist.")
    ] = False,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write KEY (value from the argument, --file, or stdin)."""
    with open_client(url) as client:
        try:
            if if_version is not None and create_only:
                raise errors.ConfigurationError("--if-version and --create-only exclude each other")
            data = _read_value(value, file)
            version = client.put(key, data, if_version=Absent if create_only else if_version)
        except errors.VeltrixError as exc:
            fail(exc)
        if as_json:
            out.print_json(json.dumps({"key": key, "version": version, "size": len(data)}))
        else:
            out.print(f"{key} = version {version} ({len(data)} bytes)", markup=False)


@app.command()
def delete(
    key: str,
    if_version: Annotated[
        str | None, typer.Option(help="Delete only if KEY is at this version.")
    ] = None,
    url: UrlOption = None,
) -> None:
    """Delete KEY (exit code 5 if it does not exist)."""
    with open_client(url) as client:
        try:
            if not client.delete(key, if_version=if_version):
                raise errors.KeyNotFoundError(f"{key!r} not found in {client.source}")
        except errors.VeltrixError as exc:
            fail(exc)
        out.print(f"deleted {key}", markup=False)


@app.command("ls")
def list_keys(
    prefix: Annotated[str, typer.Argument(help="Only keys at or below PREFIX.")] = "",
    url: UrlOption = None,
    as_json: JsonOption = False,
    reveal: RevealOption = False,
    values: Annotated[bool, typer.Option("--values", help="Show values too.")] = False,
    secret_prefix: SecretOption = None,
) -> None:
    """List keys with their versions and sizes."""
    with open_client(url, secret_prefix) as client:
        try:
            entries = client.list(prefix)
        except errors.VeltrixError as exc:
            fail(exc)
        if as_json:
            out.print_json(json.dumps([_entry_json(client, e, reveal) for e in entries]))
            return
        table = Table(title=f"{client.source} — {len(entries)} keys")
        table.add_column("key")
        table.add_column("version")
        table.add_column("size", justify="right")
        if values:
            table.add_column("value")
        for entry in entries:
            row = [entry.key, entry.version, str(len(entry.value))]
            if values:
                row.append(str(_value_fields(client, entry, reveal)["value"]))
            table.add_row(*row)
        out.print(table)


@app.command()
def watch(
    prefix: Annotated[str, typer.Argument(help="Watch keys at or below PREFIX.")] = "",
    url: UrlOption = None,
    count: Annotated[
        int, typer.Option(help="Exit after this many changes (0 = run until Ctrl-C).")
    ] = 0,
    timeout: Annotated[
        float, typer.Option(help="Exit after this many seconds (0 = no limit).")
    ] = 0.0,
    as_json: JsonOption = False,
    reveal: RevealOption = False,
    secret_prefix: SecretOption = None,
) -> None:
    """Print changes under PREFIX as they happen."""
    import threading

    done = threading.Event()
    seen = 0

    def on_change(client: Client) -> Callable[[Change], None]:
        def callback(change: Change) -> None:
            nonlocal seen
            if change.entry is None:
                line: dict[str, Any] = {"key": change.key, "deleted": True}
            else:
                line = {
                    "key": change.key,
                    **_value_fields(client, change.entry, reveal),
                    "version": change.entry.version,
                }
            if as_json:
                out.print(json.dumps(line), markup=False)
            elif change.entry is None:
                out.print(f"deleted {change.key}", markup=False)
            else:
                out.print(
                    f"{change.key} = {line['value']} (version {line['version']})", markup=False
                )
            seen += 1
            if count and seen >= count:
                done.set()

        return callback

    with open_client(url, secret_prefix) as client:
        try:
            client.watch(prefix, on_change(client))
        except errors.VeltrixError as exc:
            fail(exc)
        err.print(f"watching {prefix or '/'} in {client.source} (Ctrl-C to stop)", markup=False)
        with suppress(KeyboardInterrupt):
            done.wait(timeout or None)


@app.command()
def demo(
    url: Annotated[
        str | None,
        typer.Option(
            "--url", "-u", help="Store to run against (default: a throw-away SQLite file)."
        ),
    ] = None,
    duration: Annotated[float, typer.Option(min=0.5, help="Seconds to run.")] = 4.0,
    workers: Annotated[int, typer.Option(min=1, max=256, help="Worker threads.")] = 4,
    as_json: JsonOption = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Serve Prometheus metrics on http://127.0.0.1:PORT/metrics while the demo runs.",
        ),
    ] = None,
) -> None:
    """Event consumers reading config: the store directly vs through Veltrix."""
    from veltrix.demo import run_demo

    try:
        report = run_demo(
            url,
            duration=duration,
            workers=workers,
            progress=(lambda m: None) if as_json else (lambda m: err.print(m, markup=False)),
            metrics_port=metrics_port,
        )
    except errors.VeltrixError as exc:
        fail(exc)
    propagation = sorted(report.propagation_ms)
    summary = {
        "url": report.url,
        "workers": report.workers,
        "events_per_second_direct": round(report.direct.events_per_second),
        "events_per_second_veltrix": round(report.cached.events_per_second),
        "speedup": round(report.speedup, 1),
        "reads": report.reads,
        "cache_hit_ratio": round(report.hit_ratio, 6),
        "store_calls": report.store_calls,
        "watch_updates": report.watch_updates,
        "change_seen_by_workers": f"{len(propagation)}/{report.workers}",
        "change_propagation_ms_max": round(propagation[-1], 1) if propagation else None,
        "change_propagation_ms_median": round(propagation[len(propagation) // 2], 1)
        if propagation
        else None,
    }
    if as_json:
        out.print_json(json.dumps(summary))
        return
    table = Table(title="veltrix demo: 5 config reads per event")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("store", report.url)
    table.add_row("workers", str(report.workers))
    table.add_row(
        "events/s, reading the store directly", f"{summary['events_per_second_direct']:,}"
    )
    table.add_row("events/s, through Veltrix", f"{summary['events_per_second_veltrix']:,}")
    table.add_row("speed-up", f"{summary['speedup']}x")
    table.add_row("config reads through Veltrix", f"{report.reads:,}")
    table.add_row("cache hit ratio", f"{report.hit_ratio:.4%}")
    table.add_row("store calls through Veltrix", str(report.store_calls))
    table.add_row("change seen by workers", str(summary["change_seen_by_workers"]))
    if propagation:
        table.add_row("change -> every worker (max)", f"{propagation[-1]:.1f} ms")
        table.add_row("change -> worker (median)", f"{propagation[len(propagation) // 2]:.1f} ms")
    out.print(table)


@app.command()
def backends() -> None:
    """List the URL schemes this installation knows."""
    from veltrix.registry import BUILTIN, available_schemes

    for scheme in available_schemes():
        spec = BUILTIN.get(scheme)
        extra = f"  (pip install 'veltrix[{spec.extra}]')" if spec and spec.extra else ""
        out.print(f"{scheme}://{extra}", markup=False)


def _click_class(name: str) -> type[Exception]:
    """A click exception class by name, from the click that typer uses (typer >= 0.2x
    vendors its own copy, so ``import click`` may name other classes)."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


_ClickException = _click_class("ClickException")
_UsageError = _click_class("UsageError")


def _usage_error(exc: Any, argv: list[str]) -> str:
    """A usage error's message, one line, with every URL it quotes redacted.

    click quotes the offending arguments (``Got unexpected extra argument
    (redis://:PW@host/0)``): each argument that is a URL is replaced by its
    redacted form, and any credential left is masked by :func:`redact_text`.
    """
    message = exc.format_message()
    for arg in sorted(argv, key=len, reverse=True):
        if "://" in arg or "@" in arg:
            message = message.replace(arg, redact_url(arg))
    return errors.one_line(redact_text(message))


def main(argv: list[str] | None = None) -> None:
    """The ``veltrix`` entry point: every failure is one line on stderr and an exit code.

    Usage errors exit with 2 (as click's do), Ctrl-C with 130, a Veltrix error with
    its :data:`EXIT_CODES` code. An unexpected exception is reported by type only
    (its text might quote a value) and exits with 1.
    """
    # A command talks to its store once and reports failures itself: the store-health
    # warnings a long-running service logs, and a client library's reconnect chatter,
    # would only repeat its one-line error.
    for name in ("veltrix.health", "veltrix.zookeeper.kazoo", "kazoo"):
        quiet = logging.getLogger(name)
        quiet.addHandler(
            logging.NullHandler()
        )  # handled (adapters' filters still run), not printed
        quiet.propagate = False
    args = sys.argv[1:] if argv is None else argv
    command = typer.main.get_command(app)
    try:
        code = command.main(args, prog_name="veltrix", standalone_mode=False)
    except errors.VeltrixError as exc:  # anything a command did not catch itself
        err.print(message(exc), markup=False)
        sys.exit(exit_code(exc))
    except _UsageError as exc:
        usage: Any = exc
        # A bare ``veltrix`` raises NoArgsIsHelpError after typer printed the help.
        if type(exc).__name__ != "NoArgsIsHelpError":
            err.print(f"error: {_usage_error(usage, args)}", markup=False)
            if usage.ctx is not None:
                err.print(f"Try '{usage.ctx.command_path} --help' for help.", markup=False)
        sys.exit(usage.exit_code)
    except _ClickException as exc:
        click_error: Any = exc
        err.print(f"error: {_usage_error(click_error, args)}", markup=False)
        sys.exit(click_error.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted", markup=False)
        sys.exit(130)
    except Exception as exc:
        err.print(f"error: unexpected {type(exc).__name__} (a bug in veltrix)", markup=False)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


from veltrix import (  # noqa: E402,F401  (register their commands on app)
    cli_check,  # check
    cli_migrate,  # export/import/diff/migrate
)

if __name__ == "__main__":
    # ``python -m veltrix.cli`` runs this file as a second module named __main__; the
    # subcommand modules registered themselves on the real ``veltrix.cli``: run that one.
    from veltrix.cli import main as real_main

    real_main()
