"""``veltrix check``: connect to a store (from Terraform outputs or a URL) and report.

Registered on :data:`veltrix.cli.app` by the import at the bottom of :mod:`veltrix.cli`. It opens
the store, lists its keys and prints what it found: the URL (redacted), whether
the store answered, how many keys it holds and a sample of their names (never
values), plus the shared cache's address and whether it answers a PING (connected the way
the L2 cache connects: :mod:`veltrix.redis_connect`).

It also prints the client's health (:meth:`veltrix.Client.health`): the state,
the last successful refresh, the oldest stale value's age and the watch.

Exit codes: 0 all good; 3 bad Terraform outputs/URL/options (or a missing extra);
7 store unreachable; 8 access denied; 12 other store error (see
:data:`veltrix.cli.EXIT_CODES`); 15 the store is fine but the shared cache does
not answer; 16 the store answered but the client reports it unhealthy (slow).
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.table import Table

from veltrix import cli, errors
from veltrix.cache import CachePolicy
from veltrix.cli import UrlOption, err, exit_code, out
from veltrix.client import Client
from veltrix.health import Health
from veltrix.urls import Options, parse_url, redact_text, redact_url

#: Exit code when the store answered but the shared cache did not.
CACHE_UNREACHABLE = 15
#: Exit code when the store answered but the client's health is not good (e.g. slow).
UNHEALTHY = 16


def probe_cache(cache_url: str, timeout: float = 3.0) -> tuple[bool, str | None]:
    """Whether the shared cache answers a PING, and why not.

    The URL is parsed and connected by :mod:`veltrix.redis_connect`, exactly as the
    L2 cache does it, so every documented cache URL form is probed the way the client
    will use it: TLS with its ``ca_file``, the master a Sentinel names, any node of a
    Cluster, with ``REDIS_USERNAME`` / ``REDIS_PASSWORD`` from the environment.
    """
    try:
        from veltrix import redis_connect
    except ModuleNotFoundError as exc:
        return (
            False,
            f"the shared cache needs the {exc.name!r} package: pip install 'veltrix[redis]'",
        )
    try:
        parsed = parse_url(cache_url, redis_connect.SCHEMES)
        target = redis_connect.parse_target(parsed)
        # Not finished: the L2's own options (lock_ttl, namespace, ...) may follow.
        opts = Options(parsed.query, {}, where=parsed.redacted)
        settings = redis_connect.read_settings(target, opts, where=parsed.redacted)
        client = redis_connect.connect(
            target, settings, timeout=timeout, connect_timeout=timeout, where=parsed.redacted
        )
    except errors.ConfigurationError as exc:
        return False, str(exc)
    try:
        client.ping()
    except redis_connect.ALL_ERRORS as exc:
        return False, f"{redact_url(cache_url)}: {redis_connect.describe_error(exc)}"
    finally:
        with contextlib.suppress(*redis_connect.ALL_ERRORS):
            client.close()
    return True, None


def health_report(health: Health) -> dict[str, Any]:
    """:class:`veltrix.Health` as JSON-ready fields (never values)."""
    return {
        "state": str(health.state),
        "healthy": health.healthy,
        "reason": redact_text(health.reason) or None,
        "store_reachable": health.store_reachable,
        "watch_connected": health.watch_connected,
        "last_refresh": health.last_refresh,
        "oldest_stale_age": round(health.oldest_stale_age, 3),
        "l2_circuit_open": None if health.l2 is None else health.l2.circuit_open,
        "problems": [redact_text(p) for p in health.problems()],
    }


def run_check(url: str, *, cache_url: str | None, sample: int) -> tuple[dict[str, Any], int]:
    """Connect and describe the store; returns the report and the exit code."""
    report: dict[str, Any] = {
        "url": redact_url(url),
        "store": urlsplit(url).scheme or None,
        "reachable": False,
        "keys": None,
        "sample": [],
        "error": None,
        "health": None,
    }
    code = 0
    try:
        with Client(cli.read_only(url), cache=CachePolicy(ttl=0, watch=False)) as client:
            report["url"] = client.source
            try:
                entries = client.list("")
            except errors.UnsupportedOperationError:
                # A store without listing: one read tells reachability.
                client.get_entry("veltrix-check")
                report["reachable"] = True
            else:
                report["reachable"] = True
                names = sorted(entry.key for entry in entries)
                report["keys"] = len(names)
                report["sample"] = names[: max(sample, 0)]
            health = client.health()
            report["health"] = health_report(health)
            if not health.healthy and code == 0:
                code = UNHEALTHY
    except errors.VeltrixError as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"
        code = exit_code(exc)
    if cache_url is not None:
        ok, why = probe_cache(cache_url)
        report["cache_url"] = redact_url(cache_url)
        report["cache_reachable"] = ok
        if why:
            report["cache_error"] = why
        if not ok and code == 0:
            code = CACHE_UNREACHABLE
    return report, code


def check(
    terraform_output: Annotated[
        Path | None,
        typer.Option(
            "--terraform-output",
            "-t",
            help="A `terraform output -json` file; its veltrix_url (and veltrix_cache_url) are checked.",
        ),
    ] = None,
    module: Annotated[
        str | None,
        typer.Option(help="The object output holding veltrix_url, when several do."),
    ] = None,
    url: UrlOption = None,
    sample: Annotated[int, typer.Option(min=0, help="How many key names to show.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Connect to a store and report what is there (URL, reachable, key count, sample keys)."""
    cache_url: str | None = None
    if terraform_output is not None:
        from veltrix.terraform import read_outputs

        try:
            outputs = read_outputs(terraform_output, module=module)
        except errors.VeltrixError as exc:
            err.print(cli.message(exc), markup=False)
            raise typer.Exit(exit_code(exc)) from None
        target, cache_url = outputs.url, outputs.cache_url
    elif url is not None:
        target = url
    else:
        err.print("error: give --terraform-output FILE or --url URL (or set VELTRIX_URL)")
        raise typer.Exit(2)

    report, code = run_check(target, cache_url=cache_url, sample=sample)
    if as_json:
        out.print_json(json.dumps(report))
    else:
        table = Table(title="veltrix check", show_header=False)
        table.add_column("what")
        table.add_column("found")
        table.add_row("store", str(report["url"]))
        table.add_row("reachable", "yes" if report["reachable"] else "no")
        if report["keys"] is not None:
            table.add_row("keys", str(report["keys"]))
            table.add_row("sample", ", ".join(report["sample"]) or "(none)")
        elif report["reachable"]:
            table.add_row("keys", "(this store cannot list keys)")
        health = report["health"]
        if health is not None:
            table.add_row(
                "health", str(health["state"]) + ("" if health["healthy"] else " (unhealthy)")
            )
            if health["last_refresh"] is not None:
                when = datetime.fromtimestamp(health["last_refresh"], UTC)
                table.add_row("last refresh", when.isoformat(timespec="seconds"))
            if health["oldest_stale_age"]:
                table.add_row(
                    "oldest stale value", f"{health['oldest_stale_age']:.1f}s past its TTL"
                )
            for problem in health["problems"]:
                table.add_row("problem", problem)
        if "cache_url" in report:
            table.add_row("shared cache", str(report["cache_url"]))
            table.add_row("cache reachable", "yes" if report["cache_reachable"] else "no")
        out.print(table)
        if report["error"]:
            err.print(f"error: {redact_text(str(report['error']))}", markup=False)
        elif report.get("cache_error"):
            err.print(f"error: shared cache unreachable: {report['cache_error']}", markup=False)
    if code:
        raise typer.Exit(code)


def _register(app: typer.Typer) -> None:
    app.command("check")(check)


_register(cli.app)
