"""Run every benchmark section against the local servers, then write RESULTS.md and plots.

    scripts/services up                     # or: make bench (does everything)
    .venv/bin/python -m benchmarks [--quick] [--only founding,fleet] [--note TEXT]

Sections (each in its own process, so one failing section does not stop the rest;
its output goes to benchmarks/results/logs/<name>.log):

1. hot path (``hot_path``)                  5. freshness (``freshness``)
2. store round trips (``bench_zookeeper``,  6. memory (``memory``)
   ``bench_consul``, ``bench_aws``,          7. migration (``bench_migrate``)
   ``bench_gcpsm``, ``redis_roundtrip``,     + the L2 fleet and bus figures
   ``bench_redis_deployments``)                (``bench_redis_l2``)
3. founding scenario (``founding``)
4. fleet (``fleet``)                         8. outage (``outage``)
                                             9. asyncio (``aio``)
                                            10. miss path and expiry under load
                                                (``cache_paths``)
                                            11. metrics on the hot path
                                                (``metrics_overhead``)

A section whose server is not running is recorded as skipped. ``results/run.json``
records what ran, for how long and with what outcome; ``benchmarks/report.py`` reads
it and leaves out figures that did not come from this run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks._common import (
    REPO_ROOT,
    RESULTS_DIR,
    load_services_env,
    machine,
    package_versions,
)


@dataclass(frozen=True)
class Section:
    name: str  # JSON written: results/<json>.json
    module: str
    needs: tuple[str, ...] = ()  # VELTRIX_TEST_* variables it needs
    json: str = ""
    quick_flag: bool = True

    @property
    def json_name(self) -> str:
        return self.json or self.name


SECTIONS = [
    Section("hot_path", "benchmarks.hot_path"),
    Section("zookeeper", "benchmarks.bench_zookeeper", ("VELTRIX_TEST_ZOOKEEPER",)),
    Section("consul", "benchmarks.bench_consul", ("VELTRIX_TEST_CONSUL_ADDR",)),
    Section(
        "aws",
        "benchmarks.bench_aws",
        ("VELTRIX_TEST_APPCONFIG_ENDPOINT", "VELTRIX_TEST_MOTO_ENDPOINT"),
    ),
    Section(
        "gcpsm", "benchmarks.bench_gcpsm", ("VELTRIX_TEST_GCPSM_GRPC", "VELTRIX_TEST_GCPSM_REST")
    ),
    Section(
        "gcppm", "benchmarks.bench_gcppm", ("VELTRIX_TEST_GCPPM_GRPC", "VELTRIX_TEST_GCPPM_REST")
    ),
    Section("kubernetes", "benchmarks.bench_kubernetes", ("VELTRIX_TEST_K8S_KUBECONFIG",)),
    Section("redis_store", "benchmarks.redis_roundtrip", ("VELTRIX_TEST_REDIS_URL",)),
    Section("redis_l2", "benchmarks.bench_redis_l2", ("VELTRIX_TEST_REDIS_URL",)),
    Section("l2_requests", "benchmarks.bench_l2_requests", ("VELTRIX_TEST_REDIS_URL",)),
    Section("redis_deployments", "benchmarks.bench_redis_deployments", ("VELTRIX_TEST_REDIS_URL",)),
    Section("founding", "benchmarks.founding"),
    Section("fleet", "benchmarks.fleet"),
    Section("freshness", "benchmarks.freshness"),
    Section("memory", "benchmarks.memory"),
    Section("migrate", "benchmarks.bench_migrate"),
    Section("freshness_load", "benchmarks.freshness_load"),
    Section("aio", "benchmarks.aio"),
    Section("cache_paths", "benchmarks.cache_paths"),
    Section("k8s_volume", "benchmarks.k8s_volume"),
    Section("metrics_overhead", "benchmarks.metrics_overhead"),
    Section(
        "outage",
        "benchmarks.outage",
        ("VELTRIX_TEST_ZOOKEEPER", "VELTRIX_TEST_REDIS_URL", "VELTRIX_TEST_CONSUL_ADDR"),
    ),
]

LOG_DIR = RESULTS_DIR / "logs"


def _hot_path_command(quick: bool) -> list[str]:
    # hot_path's own main writes JSON only on a full run; a quick run must write it too.
    code = (
        "from benchmarks import hot_path; from benchmarks._common import write_json; "
        f"d = hot_path.run(quick={quick}); print(hot_path.markdown(d)); "
        "print('written', write_json('hot_path', d))"
    )
    return [sys.executable, "-c", code]


def run_section(section: Section, quick: bool, timeout: float) -> dict[str, Any]:
    missing = [v for v in section.needs if not os.environ.get(v)]
    status: dict[str, Any] = {
        "module": section.module,
        "json": section.json_name,
        "loadavg_before": os.getloadavg()[0],
    }
    if missing:
        return {**status, "status": "skipped", "reason": f"{', '.join(missing)} not set"}
    if not (REPO_ROOT / Path(*section.module.split("."))).with_suffix(".py").exists():
        return {**status, "status": "skipped", "reason": f"{section.module} does not exist"}
    if section.name == "hot_path":
        command = _hot_path_command(quick)
    else:
        command = [sys.executable, "-m", section.module] + (["--quick"] if quick else [])
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{section.name}.log"
    json_path = RESULTS_DIR / f"{section.json_name}.json"
    before = json_path.stat().st_mtime if json_path.exists() else None
    started = time.monotonic()
    print(f"[bench] {section.name}: {section.module} ...", flush=True)
    with log_path.open("w") as log:
        try:
            proc = subprocess.run(
                command,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = None
    seconds = time.monotonic() - started
    status["seconds"] = round(seconds, 1)
    status["log"] = str(log_path.relative_to(REPO_ROOT))
    if code is None:
        status.update(status="failed", reason=f"timed out after {timeout:.0f} s")
    elif code != 0:
        tail = log_path.read_text().strip().splitlines()[-1:] or ["?"]
        status.update(status="failed", reason=f"exit {code}: {tail[0][:200]}")
    elif not json_path.exists() or json_path.stat().st_mtime == before:
        status.update(status="failed", reason="finished without writing its JSON")
    else:
        status["status"] = "ok"
    print(
        f"[bench] {section.name}: {status['status']} in {seconds:.0f} s"
        + (f" ({status.get('reason')})" if status["status"] != "ok" else ""),
        flush=True,
    )
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="short runs of every section (a few minutes)"
    )
    parser.add_argument("--only", default="", help="comma-separated section names")
    parser.add_argument(
        "--note",
        default=os.environ.get("VELTRIX_BENCH_NOTE", ""),
        help="a sentence for RESULTS.md (e.g. that the machine was shared)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per section")
    args = parser.parse_args(argv)
    load_services_env()
    only = {s for s in args.only.split(",") if s}
    unknown = only - {s.name for s in SECTIONS}
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    started = time.monotonic()
    sections: dict[str, Any] = {}
    previous = RESULTS_DIR / "run.json"
    last: dict[str, Any] = {}
    if only and previous.exists():  # re-running some sections: keep the rest of the last run
        last = json.loads(previous.read_text())
        if last.get("quick") == args.quick:
            sections.update(last.get("sections", {}))
        else:
            last = {}
    for section in SECTIONS:
        if only and section.name not in only:
            continue
        sections[section.name] = run_section(section, args.quick, args.timeout)
    run = {
        "command": "python -m benchmarks" + (" --quick" if args.quick else ""),
        "quick": args.quick,
        "note": args.note,
        "finished": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(time.monotonic() - started, 1),
        "sections": sections,
        "machine": machine(),
        "versions": package_versions(
            "veltrix",
            "aws-lambda-powertools",
            "dynaconf",
            "pydantic",
            "pydantic-settings",
            "kazoo",
            "py-consul",
            "boto3",
            "moto",
            "google-cloud-secret-manager",
            "google-cloud-parametermanager",
            "redis",
            "matplotlib",
            "psutil",
        ),
    }
    if only:
        # the run is still the one the other sections come from: keep its date, and list
        # every section re-run since
        run["rerun"] = sorted(only | set(last.get("rerun", [])))
        if last.get("finished"):
            run["finished"] = last["finished"]
    (RESULTS_DIR / "run.json").write_text(json.dumps(run, indent=2, sort_keys=True) + "\n")
    path = report.write(run)
    print(
        f"[bench] written {path.relative_to(REPO_ROOT)} and plots in "
        f"{report.PLOTS_DIR.relative_to(REPO_ROOT)} ({run['seconds'] / 60:.1f} min)"
    )
    failed = [k for k, v in sections.items() if v["status"] == "failed"]
    if failed:
        print(f"[bench] failed: {', '.join(failed)} (logs in {LOG_DIR.relative_to(REPO_ROOT)})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
