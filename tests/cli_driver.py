"""Runs ``veltrix`` command lines one after another in one process, for the CLI fuzz.

Starting a Python process per command line costs about half a second; the fuzz
suite sends hundreds. This driver reads one JSON object per line on stdin,
``{"id": n, "argv": [...], "stdin": "...", "env": {...}}`` (``env``: variables set
for that command line only), runs the real entry point
(:func:`veltrix.cli.main`) with stdout, stderr and stdin replaced, and answers
one JSON line: ``{"id": n, "code": exit code, "stdout": ..., "stderr": ...,
"escaped": traceback or null}``. Anything else on the driver's stdout was written
past the replaced streams (a background thread printing after its command ended). ``escaped`` is set when something other than
``SystemExit`` left ``main`` (what the plain process would print as a traceback).

Each command line runs in a fresh scratch directory that is also its
``VELTRIX_HOME`` (so its default SQLite store is empty): one run's writes never
show up in another's output, and a failing example replays the same way.

A command line that has not finished after :data:`TIME_LIMIT` seconds (or the
request's ``time_limit``) gets a ``KeyboardInterrupt`` (as from Ctrl-C) and is
reported with ``"timed_out": true``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sys
import tempfile
import traceback
from types import FrameType
from typing import Any

TIME_LIMIT = 5.0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_one(argv: list[str], stdin: str, time_limit: float = TIME_LIMIT) -> dict[str, Any]:
    from veltrix.cli import main

    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")
    saved = sys.stdout, sys.stderr, sys.stdin, sys.argv
    sys.stdout, sys.stderr, sys.argv = out, err, ["veltrix", *argv]
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode("utf-8", "surrogatepass")))
    code: Any = None
    escaped = None
    timed_out = False
    signal.signal(signal.SIGALRM, _interrupt)
    signal.setitimer(signal.ITIMER_REAL, time_limit)
    try:
        main()  # the console script's call: arguments from sys.argv
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:
        timed_out = True
    except BaseException as exc:
        escaped = "".join(traceback.format_exception(exc))
    finally:
        remaining, _ = signal.setitimer(signal.ITIMER_REAL, 0)
        timed_out = timed_out or remaining == 0
        sys.stdout, sys.stderr, sys.stdin, sys.argv = saved
    out.flush()
    err.flush()
    return {
        "code": code if isinstance(code, int) or code is None else str(code),
        "stdout": out.buffer.getvalue().decode("utf-8", "backslashreplace"),  # type: ignore[attr-defined]
        "stderr": err.buffer.getvalue().decode("utf-8", "backslashreplace"),  # type: ignore[attr-defined]
        "escaped": escaped,
        "timed_out": timed_out,
    }


def serve() -> None:
    reply = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        limit = float(request.get("time_limit", TIME_LIMIT))
        scratch = tempfile.mkdtemp(prefix="veltrix-cli-")
        os.chdir(scratch)
        os.environ["VELTRIX_HOME"] = scratch
        extra_env: dict[str, str] = request.get("env") or {}
        saved_env = {name: os.environ.get(name) for name in extra_env}
        os.environ.update(extra_env)
        try:
            result = run_one(request["argv"], request.get("stdin", ""), limit)
        finally:
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            os.chdir("/")
            shutil.rmtree(scratch, ignore_errors=True)
        result["id"] = request.get("id")
        reply.write(json.dumps(result) + "\n")
        reply.flush()


if __name__ == "__main__":
    serve()
