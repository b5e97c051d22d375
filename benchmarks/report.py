"""Write benchmarks/RESULTS.md and the PNG plots from the JSON in benchmarks/results/.

    .venv/bin/python -m benchmarks.report

Called by ``benchmarks/run_all.py`` after a run; reads ``results/run.json`` (which
sections ran in that run, and how) so a figure left over from an older run is never
reported as part of this one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks._common import RESULTS_DIR

BENCH_DIR = Path(__file__).resolve().parent
PLOTS_DIR = BENCH_DIR / "plots"
RESULTS_MD = BENCH_DIR / "RESULTS.md"

TARGETS = {
    "hit": "cached hit <= 3x dict.get",
    "powertools": ">= 15x faster than Powertools' cached get",
    "fleet": "store calls flat in P with L2",
    "founding": ">= 100x events/s vs direct store reads",
    "freshness": "freshness p99 <= 50 ms for stores that watch",
    "memory": "<= 250 bytes per cached key",
    "outage_failed": "0 failed reads while the store is down",
    "outage_latency": "max read during an outage <= 50 ms (paced readers)",
    "cold_start": "cold start <= 1 s for 1,000 last-known-good keys, store down",
    "recovery": "recovery <= 2 s after the store returns",
    "metrics_hit": "metrics installed: <= 10 ns added per cached hit",
}
TARGET_P99 = 50.0


def _load(name: str, run: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON of a section that succeeded in this run, else None."""
    status = run.get("sections", {}).get(name)
    if status is not None and status.get("status") != "ok":
        return None
    path = RESULTS_DIR / f"{status.get('json', name) if status else name}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _minutes(run: dict[str, Any]) -> float:
    return sum(float(v.get("seconds", 0)) for v in run.get("sections", {}).values()) / 60


def _yes(met: bool | None) -> str:
    return "n/a" if met is None else ("**met**" if met else "**missed**")


# -- plots -----------------------------------------------------------------------------


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_hot_path(data: dict[str, Any]) -> str:
    plt = _plt()
    items = sorted(data["results"].items(), key=lambda kv: kv[1]["median_ns"])
    fig, ax = plt.subplots(figsize=(8, 4))
    names = [k for k, _ in items]
    ax.barh(
        names,
        [v["median_ns"] for _, v in items],
        xerr=[[0] * len(items), [v["p99_ns"] - v["median_ns"] for _, v in items]],
        color=["#2a7" if k.startswith("veltrix") else "#888" for k in names],
    )
    ax.set_xscale("log")
    ax.set_xlabel("ns per cached read (median; whisker to p99), log scale")
    ax.set_title("1. Hot path: one cached configuration read")
    fig.tight_layout()
    return _save(fig, "hot_path.png")


def plot_founding(data: dict[str, Any]) -> str:
    plt = _plt()
    stores = list(data["stores"])
    fig, axes = plt.subplots(1, len(stores), figsize=(5 * len(stores), 4), squeeze=False)
    for ax, store in zip(axes[0], stores, strict=True):
        rows = data["stores"][store]["rows"]
        threads = [r["threads"] for r in rows]
        for mode, style in (("direct", "o-"), ("L1", "s-"), ("L1+L2", "^--")):
            if mode in rows[0]:
                ax.plot(threads, [r[mode]["events_per_s"] for r in rows], style, label=mode)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(threads, [str(t) for t in threads])
        ax.set_xlabel("consumer threads")
        ax.set_ylabel("events/s (5 reads each), log scale")
        ax.set_title(f"3. Founding scenario: {store}")
        ax.legend()
    fig.tight_layout()
    return _save(fig, "founding.png")


def plot_fleet(data: dict[str, Any]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for mode, style in (("no cache", "o-"), ("L1", "s-"), ("L1+L2", "^-")):
        rows = sorted((r for r in data["rows"] if r["mode"] == mode), key=lambda r: r["processes"])
        if rows:
            ax.plot(
                [r["processes"] for r in rows],
                [r["store_calls_per_s"] for r in rows],
                style,
                label=mode,
            )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(data["processes"], [str(p) for p in data["processes"]])
    ax.set_xlabel("processes (2 reader threads each)")
    ax.set_ylabel("store calls/s, log scale")
    ax.set_title(f"4. Fleet store load: {data['keys']} hot keys, TTL {data['ttl_s']} s")
    ax.legend()
    fig.tight_layout()
    return _save(fig, "fleet_store_load.png")


def plot_freshness(data: dict[str, Any]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for store, result in data["stores"].items():
        rows = [r for r in result["rows"] if r["write_to_all"]]
        if not rows:
            continue
        ax.plot(
            [r["watchers"] for r in rows],
            [r["write_to_all"]["p99_ms"] for r in rows],
            "o--" if result["polling"] else "o-",
            label=store + (" (poll)" if result["polling"] else ""),
        )
    ax.axhline(data["target_p99_ms"], color="red", linewidth=1, label="target p99 50 ms")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(data["watchers"], [str(w) for w in data["watchers"]])
    ax.set_xlabel("watching clients W")
    ax.set_ylabel("write -> all W updated, p99 ms (log)")
    ax.set_title("5. Freshness")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, "freshness.png")


def plot_memory(data: dict[str, Any]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    parts = data["breakdown_bytes_per_key"]
    left = 0.0
    for name, size in parts.items():
        ax.barh(["veltrix.Client"], [size], left=left, label=name)
        left += size
    ax.barh(["plain dict"], [data["dict_beyond_value_bytes_per_key"]], color="#888")
    ax.axvline(data["target_bytes"], color="red", linewidth=1, label="target 250 B")
    ax.set_xlabel("bytes per cached key beyond the value")
    ax.set_title(f"6. Memory ({data['keys']:,} keys)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return _save(fig, "memory.png")


def plot_migration(data: dict[str, Any]) -> str:
    plt = _plt()
    pairs = [(k, v) for k, v in data["pairs"].items() if "nothing to do" not in k]
    pairs.sort(key=lambda kv: kv[1]["keys_per_s"])
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(pairs) + 1.5))
    ax.barh([k for k, _ in pairs], [v["keys_per_s"] for _, v in pairs], color="#47a")
    ax.set_xlabel("keys/s")
    ax.set_title(f"7. Migration: {data['keys']:,} keys per pair")
    fig.tight_layout()
    return _save(fig, "migration.png")


def _save(fig: Any, name: str) -> str:
    PLOTS_DIR.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOTS_DIR / name, dpi=110)
    _plt().close(fig)
    return f"plots/{name}"


# -- sections --------------------------------------------------------------------------


def section_hot_path(data: dict[str, Any] | None, verdicts: dict[str, Any]) -> list[str]:
    out = ["## 1. Hot path: ns per cached read", ""]
    if data is None:
        return [*out, "_Not measured in this run._", ""]
    from benchmarks import hot_path

    r = data["results"]
    v = r["veltrix Client.get"]["median_ns"]
    x_dict = r["veltrix Client.get"]["x_dict_get"]
    pt = r.get("powertools BaseProvider.get (cached)")
    verdicts["hit"] = (
        f"{x_dict:.2f}x dict.get ({v:.0f} ns vs {r['dict.get']['median_ns']:.0f} ns)",
        x_dict <= 3.0,
    )
    if pt:
        speedup = pt["median_ns"] / v
        verdicts["powertools"] = (
            f"{speedup:.1f}x faster ({pt['median_ns']:.0f} ns vs {v:.0f} ns)",
            speedup >= 15.0,
        )
    out += [
        f"{data['runs']} interleaved rounds of {data['calls_per_run']:,} calls per candidate "
        "(`benchmarks/hot_path.py`); every value already cached.",
        "",
        hot_path.markdown(data),
        "",
        f"![hot path]({plot_hot_path(data)})",
        "",
        f"- Target {TARGETS['hit']}: {_yes(verdicts['hit'][1])} — {verdicts['hit'][0]}.",
    ]
    if not verdicts["hit"][1]:
        out.append(
            "  Why: a hit is one Python method call (`Client.get(key, default, type)`: frame, "
            "argument binding, a `type is None` branch, one `dict.get` and a class check), "
            "while `dict.get` is a C call; on CPython 3.11 the Python call itself is most of "
            "the difference. What would close it: a hit path that never enters Python code, "
            "e.g. a small C extension type for the L1 map whose `get` falls back to the Python "
            "slow path only on a miss; pure Python cannot get under ~3x here without dropping "
            "the miss handling from the call."
        )
    floor = r.get(hot_path.FLOOR_SIGNATURE)
    one = r.get(hot_path.FLOOR_ONE_ARGUMENT)
    if floor and one:
        out.append(
            f"- Issue #23's target for a hit, <= 2.0x dict.get: {_yes(x_dict <= 2.0)} — "
            f"{x_dict:.2f}x. The floor rows are what any Python method costs here: one that "
            f"only returns the dict value is {floor['x_dict_get']:.2f}x with `Client.get`'s "
            f"signature (key, default, type) and {one['x_dict_get']:.2f}x with the key alone; "
            f"`Client.get` adds {v - floor['median_ns']:.1f} ns to the first (its `type` "
            "branch). A hit at 2.0x would take a compiled `get`."
        )
    bound = r.get("veltrix Client.bind attribute")
    settings = r.get("pydantic-settings attribute")
    plain = r.get(hot_path.FLOOR_ATTRIBUTE)
    if bound and settings and plain:
        out.append(
            f"- Issue #23's target for the live view (`Client.bind`), <= 1.3x dict.get: "
            f"{_yes(bound['x_dict_get'] <= 1.3)} — {bound['x_dict_get']:.2f}x, against "
            f"{settings['x_dict_get']:.2f}x for a pydantic-settings attribute and "
            f"{plain['x_dict_get']:.2f}x for a plain object's. A bound view is a pydantic "
            "model instance, and a field read on any pydantic model goes through "
            "`BaseModel.__getattr__`'s hook, which keeps CPython from specializing it: the "
            "view reads as fast as pydantic allows."
        )
    if "powertools" in verdicts:
        out.append(
            f"- Target {TARGETS['powertools']}: {_yes(verdicts['powertools'][1])} — "
            f"{verdicts['powertools'][0]}."
        )
        if not verdicts["powertools"][1]:
            out.append(
                "  Why: the gap to Powertools' cached get (a cache-key tuple, a dict lookup and a "
                "datetime comparison per read) was smaller in this run than the target; "
                "compare the p99 columns for this machine's noise."
            )
    return [*out, ""]


def section_round_trips(run: dict[str, Any]) -> list[str]:
    out = [
        "## 2. Store round trips: the miss path vs the raw client",
        "",
        "Each store's own benchmark (`benchmarks/bench_<store>.py`) against its local server. "
        "Servers are on loopback (ZooKeeper and Redis are the real servers; Consul, AppConfig and "
        "Secret Manager are our wire-faithful Python test servers; SSM is moto), so compare ratios, "
        "not absolute store latency.",
        "",
        "| store | raw client read | veltrix miss (adapter get) | miss / raw | cached get | raw / cached |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows = 0
    zk = _load("zookeeper", run)
    if zk:
        r = zk["reads"]
        raw, miss, hit = (
            r["kazoo_get"]["median_us"],
            r["adapter_uncached_get"]["median_us"],
            r["veltrix_cached_get"]["median_us"],
        )
        out.append(
            f"| ZooKeeper (kazoo get, median) | {raw:.0f} µs | {miss:.0f} µs | "
            f"{miss / raw:.2f} | {hit * 1e3:.0f} ns | {raw / hit:,.0f}x |"
        )
        rows += 1
    co = _load("consul", run)
    if co:
        r = co["reads"]
        raw, miss, hit = (
            r["py_consul_kv_get"]["p50_us"],
            r["adapter_get_uncached"]["p50_us"],
            r["veltrix_cached_get"]["p50_us"],
        )
        out.append(
            f"| Consul (py-consul kv.get, p50) | {raw:.0f} µs | {miss:.0f} µs | "
            f"{miss / raw:.2f} | {hit * 1e3:.0f} ns | {raw / hit:,.0f}x |"
        )
        rows += 1
    aws = _load("aws", run)
    if aws:
        u = aws["ssm"]["uncached_get_us"]
        hit = aws["ssm"]["cached_get_ns"]["veltrix"]
        raw, miss = u["boto3_get_parameter"], u["veltrix_adapter"]
        out.append(
            f"| SSM (boto3 get_parameter, best of 5) | {raw:.0f} µs | {miss:.0f} µs | "
            f"{miss / raw:.2f} | {hit:.0f} ns | {raw * 1e3 / hit:,.0f}x |"
        )
        rows += 1
    gc = _load("gcpsm", run)
    if gc:
        for transport, r in gc["transports"].items():
            raw, miss, hit = (
                r["raw_access_secret_version"]["p50_us"],
                r["adapter_get_uncached"]["p50_us"],
                r["veltrix_cached_get"]["p50_us"],
            )
            out.append(
                f"| Secret Manager {transport} (access_secret_version, p50) | {raw:.0f} µs | "
                f"{miss:.0f} µs | {miss / raw:.2f} | {hit * 1e3:.0f} ns | {raw / hit:,.0f}x |"
            )
            rows += 1
    rd = _load("redis_store", run)
    if rd:
        r = rd["reads"]
        raw, miss, hit = (
            r["redis_py_get"]["p50_us"],
            r["adapter_get_uncached"]["p50_us"],
            r["veltrix_cached_get"]["p50_us"],
        )
        out.append(
            f"| Redis (redis-py GET, p50) | {raw:.0f} µs | {miss:.0f} µs | {miss / raw:.2f} | "
            f"{hit * 1e3:.0f} ns | {raw / hit:,.0f}x |"
        )
        rows += 1
    if rows == 0:
        out.append("| _none measured in this run_ | | | | | |")
    if aws:
        out += [
            "",
            "AWS, Veltrix vs Powertools on the same servers (cached get, best of 5; "
            f"store requests in a {aws['run_seconds']:g} s run with max_age "
            f"{aws['max_age_s']} s):",
            "",
            "| store | veltrix ns | Powertools ns | ratio | store requests veltrix / Powertools |",
            "|---|---:|---:|---:|---:|",
        ]
        for store in ("appconfig", "ssm"):
            c, rn = aws[store]["cached_get_ns"], aws[store]["run"]
            out.append(
                f"| {store} | {c['veltrix']:.0f} | {c['powertools']:.0f} | "
                f"{c['powertools'] / c['veltrix']:.1f}x | "
                f"{rn['veltrix']['store_requests']} / {rn['powertools']['store_requests']} |"
            )
    out += [
        "",
        "The miss path costs one store round trip plus the adapter's decoding "
        "(version, content type, provenance); it is paid once per key per TTL.",
        "",
    ]
    if zk and "propagation_by_mode" in zk:
        out += _zookeeper_watch_modes(zk)
    deployments = _load("redis_deployments", run)
    if deployments:
        from benchmarks import bench_redis_deployments

        table = bench_redis_deployments.markdown(deployments).split("\n")[2:]
        out += ["Redis per deployment (`benchmarks/bench_redis_deployments.py`):", "", *table, ""]
    return out


def _zookeeper_watch_modes(zk: dict[str, Any]) -> list[str]:
    """Persistent recursive vs one-shot ZooKeeper watches, side by side."""
    out = [
        "ZooKeeper watch modes (`benchmarks/bench_zookeeper.py`; persistent recursive "
        "watches are the default on ZooKeeper >= 3.6, one-shot watches what older servers get):",
        "",
        "| watch_mode | put -> callback p50 / p99 | burst: lag after last put | "
        "watch() on the tree | watches held by the server |",
        "|---|---:|---:|---:|---:|",
    ]
    setup = zk["watch_setup"]
    for mode, prop in zk["propagation_by_mode"].items():
        p, burst = prop["write_to_callback"], zk["burst_by_mode"][mode]
        out.append(
            f"| {mode} | {p['p50_ms']:.2f} / {p['p99_ms']:.2f} ms | "
            f"{burst['lag_after_last_write_ms']:.1f} ms ({burst['keys']} puts) | "
            f"{setup[mode]['watch_ms']:.0f} ms ({setup['keys']} keys) | "
            f"{setup[mode]['server_watches']} |"
        )
    return [*out, ""]


def _founding_baselines(data: dict[str, Any]) -> list[str]:
    """Issue #23's part 6: L1 against each cheap cache, its lowest ratio in the run."""
    lowest: dict[str, tuple[float, str]] = {}
    for store, result in data["stores"].items():
        for row in result["rows"]:
            for key, ratio in row.items():
                name = key.removeprefix("L1_over ")
                if name != key and (name not in lowest or ratio < lowest[name][0]):
                    threads = row["threads"]
                    where = f"{store}, {threads} thread{'s' if threads > 1 else ''}"
                    lowest[name] = (ratio, where)
    if not lowest:
        return []
    parts = [f"{name} {ratio:.2f}x ({where})" for name, (ratio, where) in lowest.items()]
    met = all(ratio >= 1.0 for ratio, _ in lowest.values())
    return [
        f"- Issue #23's target, Veltrix L1 at least as many events/s as each cheap cache: "
        f"{_yes(met)} — lowest L1 / baseline in this run: {'; '.join(parts)}. "
        "`functools.lru_cache` never refreshes and its hit is C code: a tie with it is the "
        "floor a Python `get` can reach (section 1)."
    ]


def section_founding(data: dict[str, Any] | None, verdicts: dict[str, Any]) -> list[str]:
    out = ["## 3. Founding scenario: events/s, 5 configuration reads per event", ""]
    if data is None:
        return [*out, "_Not measured in this run._", ""]
    from benchmarks import founding

    worst: tuple[float, str] | None = None
    for store, result in data["stores"].items():
        for row in result["rows"]:
            for mode in ("L1", "L1+L2"):
                ratio = row.get(f"{mode}_over_direct")
                if ratio is not None and (worst is None or ratio < worst[0]):
                    worst = (ratio, f"{store}, {mode}, {row['threads']} threads")
    rounds = data.get("rounds", 1)
    out += [
        f"Each point runs {data['seconds_per_point']:g} s per source, in {rounds} interleaved "
        "rounds with the other sources at the same thread count (rotated order; the figure "
        "is the median round) (`benchmarks/founding.py`). An event is 5 reads and no other "
        "work, so these are ceilings set by the configuration layer alone.",
        "",
        founding.markdown(data),
        f"![founding scenario]({plot_founding(data)})",
        "",
    ]
    if worst is not None:
        verdicts["founding"] = (f"lowest ratio {worst[0]:,.0f}x ({worst[1]})", worst[0] >= 100)
        out.append(
            f"- Target {TARGETS['founding']}: {_yes(worst[0] >= 100)} — {verdicts['founding'][0]}."
        )
    out += _founding_baselines(data)
    out += [
        "- Through Veltrix the events/s do not grow with threads: the hits are pure Python and "
        "share one GIL on 2 cores; direct reads are bound by the store round trip "
        "(the Consul server here is a Python process on the same 2 cores).",
        "",
    ]
    return out


def section_fleet(data: dict[str, Any] | None, verdicts: dict[str, Any]) -> list[str]:
    out = ["## 4. Fleet: store load against processes", ""]
    if data is None:
        return [*out, "_Not measured in this run._", ""]
    from benchmarks import fleet

    out += [
        f"{data['keys']} hot keys read in a tight loop by {data['threads_per_process']} threads per "
        f"process for {data['duration_s']:g} s; TTL {data['ttl_s']} s; the store (SQLite behind a "
        f"read counter) adds {data['store_delay_s'] * 1000:.0f} ms per read "
        "(`benchmarks/fleet.py`, workers from `benchmarks/redis_fleet.py`). Store calls are "
        "counted at the store, not by the clients.",
        "",
        fleet.markdown(data),
        "",
        f"![fleet store load]({plot_fleet(data)})",
        "",
    ]
    flat = fleet.flatness(data)
    l1 = fleet.flatness(data, "L1")
    if flat is not None:
        met = flat <= 1.5
        ideal = data["keys"] / data["ttl_s"]
        verdicts["fleet"] = (
            f"L1+L2 store calls/s at P={max(data['processes'])} are "
            f"{flat:.2f}x those at P=1 (L1 alone: {l1:.1f}x)",
            met,
        )
        out += [
            f"- Target {TARGETS['fleet']} (read as: at most 1.5x from P=1 to the largest P): "
            f"{_yes(met)} — {verdicts['fleet'][0]}. One store read per key per TTL for the whole "
            f"fleet is {ideal:.0f} calls/s.",
        ]
        if not met:
            out.append(
                "  Why: some processes read the store themselves instead of waiting for the "
                "fleet lock holder's value (the L2 rows grow with P). Check the L2 lock timeout "
                "against the 2 ms store delay and the scheduling delay of up to 32 reader "
                "threads on 2 cores."
            )
    out += ["- Reads/s fall as P grows past the 2 cores: the processes share them.", ""]
    return out


def section_freshness(
    data: dict[str, Any] | None, l2: dict[str, Any] | None, verdicts: dict[str, Any]
) -> list[str]:
    out = ["## 5. Freshness: write -> all W watching clients updated", ""]
    if data is None:
        return [*out, "_Not measured in this run._", ""]
    from benchmarks import freshness

    out += [
        "W clients in one process, each with its own connection and watch; a separate writer; "
        "one write at a time (`benchmarks/freshness.py`). A client counts as updated when its "
        "subscription callback fires with the new value (after its cache was updated).",
        "",
        freshness.markdown(data),
        "",
        f"![freshness]({plot_freshness(data)})",
        "",
    ]
    push = {k: v for k, v in data["stores"].items() if not v["polling"]}
    missed = [k for k, v in push.items() if not v["target_met"]]
    if push:
        worst = max(push.items(), key=lambda kv: kv[1]["worst_p99_ms"] or 0.0)
        verdicts["freshness"] = (
            f"worst p99 {worst[1]['worst_p99_ms']:.1f} ms ({worst[0]}); "
            + (
                "all watching stores within 50 ms" if not missed else f"missed: {', '.join(missed)}"
            ),
            not missed,
        )
        out.append(
            f"- Target {TARGETS['freshness']}: {_yes(not missed)} — {verdicts['freshness'][0]}."
        )
        for kind in missed:
            for r in push[kind]["rows"]:
                s, w = r["write_to_all"], r["write_alone"]
                if s is not None and s["p99_ms"] <= TARGET_P99 and not r["missed"]:
                    continue
                out.append(
                    f"  - {kind}, W={r['watchers']}: "
                    + (
                        f"p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms; the write alone "
                        f"took {w['p50_ms']:.1f} ms at p50 in the same run"
                        if s
                        else "no write reached all watchers"
                    )
                    + (
                        f"; {r['missed']} of {r['writes']} writes not seen by all"
                        if r["missed"]
                        else ""
                    )
                    + "."
                )
            out.append(
                f"  Why ({kind}): each of the W clients keeps its own watch, so the server answers "
                "W watch requests per change while the writer waits for it, all on the same 2 "
                "shared cores (for Consul, the server is our single-process Python test server). "
                "What would close it: clients of one store in one process sharing one watch "
                "(W watch connections -> 1), a core change proposed, not done here."
            )
    polling = [k for k, v in data["stores"].items() if v["polling"]]
    if polling:
        out.append(
            f"- Polling stores ({', '.join(polling)}): measured with a "
            f"{data['poll_interval_s']} s poll interval; their freshness is bounded by the "
            "interval (AWS requires >= 15 s for AppConfig sessions), so the 50 ms target "
            "does not apply. Pair them with the L2 bus below for fleet-wide fan-out."
        )
    if l2:
        p = l2["write_to_all_l1"]
        out.append(
            f"- Through the L2 invalidation bus (Redis pub/sub, store watch off, "
            f"`benchmarks/bench_redis_l2.py`): write -> all {p['clients'] - 1} other "
            f"clients' L1 p50 {p['p50_ms']:.2f} ms, p99 {p['p99_ms']:.2f} ms "
            f"({p['writes']} writes)."
        )
    return [*out, ""]


def section_freshness_load(data: dict[str, Any] | None) -> list[str]:
    out = ["### 5b. Freshness under load: write -> every busy reader of one process", ""]
    if data is None:
        return [*out, "_Not measured in this run._", ""]
    from benchmarks import freshness_load

    return [
        *out,
        "`benchmarks/freshness_load.py`: 4 reader threads read one key through one watching "
        "client, in a tight loop (*busy*) or 1 ms apart (*paced*); a writer in the same "
        "process writes; the clock runs from the start of the write until every reader has "
        "read the new value. With busy readers every thread a change crosses waits for the "
        "GIL (5 ms switch interval), and the write itself is slowed the same way (put p50). "
        f"Load average after the section: {data.get('loadavg', [0])[0]:.2f}.",
        "",
        freshness_load.markdown(data),
        "",
    ]


def section_cache_paths(data: dict[str, Any] | None) -> list[str]:
    out = ["## 10. Slow paths: a cache miss, and TTL expiry under load", ""]
    if data is None:
        return [*out, "_Not measured in this run._", ""]
    from benchmarks import cache_paths

    return [
        *out,
        "`benchmarks/cache_paths.py`. First table: every key read once through a fresh "
        "client on `memory://` against the raw store call and the cheapest honest caches "
        "missing on the same store (best of interleaved rounds). Second table: one key with "
        f"a {data['ttl_s'] * 1e3:.0f} ms TTL and no watch, its value changed behind the "
        "client's back; the sample runs from the cached value's TTL deadline to the first "
        "read of the new value (negative: refreshed before the TTL ran out; target: p99 "
        "<= +20 ms with busy readers). A value read in the last tenth of its TTL is "
        "refreshed in the background before the TTL (refresh-ahead); the last row switches "
        "that off in the same run, which is how the client worked before: the refresh "
        "began at the TTL and its hops between threads queued for the GIL behind the "
        "busy readers. Load average "
        f"before/after: {data['loadavg_before'][0]:.2f} / {data['loadavg_after'][0]:.2f}.",
        "",
        cache_paths.markdown(data),
        "",
        "The miss path before and after its rewrite as one function (2026-12-02, same "
        "machine, the previous commit's `core/` imported side by side):",
        "",
        "- CPU instructions counted by `valgrind --tool=callgrind` (repeatable whatever the "
        "load; 20,000 fresh keys, whole process, minus the same process making raw store "
        "calls): 62,400 instructions per miss over the raw store call before, 26,600 after "
        "(2.35x fewer); the raw `MemoryBackend.get` itself is 4,900.",
        "- Thread CPU time (best of 15 rounds of 10,000 fresh keys, the two versions "
        "alternated, load average ~4): 8.1-9.3 µs over the raw call before, 3.6 µs after. "
        "The table before the rewrite (load 3.08) had +15,335 ns over the raw call.",
        "- Second round (the key checked once, by veltrix's own stores; counts, the first "
        "duration bucket and the refresh time folded in when read; one epoch read; the "
        "expiry slot appended inline): 26,600 -> 19,500 callgrind instructions per miss "
        "over the raw call; +3.9 -> +2.8 µs in alternated rows at load ~1.2.",
        "- Third round (2026-12-02): the per-key `Record` became a plain tuple, which the "
        "cyclic garbage collector stops tracking (a slotted object is always tracked; a "
        "full collection with 100,000 cached keys costs 0.6-2.7 ms more than with none, "
        "against 8.7-12.4 ms before); versions stay the store's strings (parsing them "
        "cost ~380 ns per miss); a deadline in the expiry scheduler's open slot is "
        "appended without computing the slot; the install skips the side tables a key "
        "without a record is never in. 20,169 -> 15,478 callgrind instructions per miss "
        "over the raw call with the collector off, 21,028 -> 15,494 with it on.",
        *_miss_verdict(data["miss_ns"]),
        "",
    ]


def _miss_verdict(miss: dict[str, float]) -> list[str]:
    """Issue #23's miss target, against this run's raw call and reference row."""
    from benchmarks import cache_paths

    raw = miss["raw store get"]
    over = miss["veltrix Client.get (miss)"] - raw
    lines = [
        f"- Issue #23's target, a miss within 2 µs of the raw store call: "
        f"{_yes(over <= 2000)} — {over:+,.0f} ns."
    ]
    shape = miss.get(cache_paths.SHAPE_FLOOR)
    if shape is not None:
        floor = shape - raw
        lines.append(
            f"  The reference row (`Client.get`'s shape with none of its guarantees: the "
            f"hot dict's `KeyError`, a second call, decoding, one clock read, a lock and two "
            f"dict inserts) is {floor:+,.0f} ns by itself; the other {over - floor:,.0f} ns "
            "are single-flight, health, the counts and the store call's timing, the expiry "
            "schedule and the provenance check. Of the "
            "reference's cost, the `KeyError` alone is ~250 ns on this machine; avoiding it "
            "(`dict.get` or a dict subclass with `__missing__`) would slow every hit."
        )
    return lines


def section_k8s_volume(data: dict[str, Any] | None) -> list[str]:
    out = ["### 5c. Kubernetes mounted volume: kubelet swap -> client", ""]
    if data is None:
        return [*out, "_Not measured in this run._", ""]
    from benchmarks import k8s_volume

    return [
        *out,
        "`benchmarks/k8s_volume.py` (`python -m benchmarks.k8s_volume`): a process of its own "
        "updates a volume of "
        f"{data['keys_in_volume']} keys the way the kubelet does (new timestamped directory, "
        "`..data` renamed over it, old directory removed), one swap at a time; one client "
        "(TTL 1 h) watches it, by inotify (watchfiles) or by polling `..data` every "
        f"{data['poll_interval_s'] * 1000:.0f} ms; *busy*: 4 threads also read the key "
        "through that client in a tight loop. The clock runs from the start of the swap. "
        "With busy readers, each system call of the re-read (open, read and close of every "
        "file) hands the GIL to a reader for up to the 5 ms switch interval, which dominates "
        "those figures. Then a cached read against `dict.get` of a value loaded once. The "
        "kubelet's own delay before it swaps (about a minute by default) is not included. "
        f"Load average after the section: {data.get('loadavg', [0])[0]:.2f}.",
        "",
        k8s_volume.markdown(data),
        "",
    ]


def section_memory(data: dict[str, Any] | None, verdicts: dict[str, Any]) -> list[str]:
    out = ["## 6. Memory: bytes per cached key", ""]
    if data is None:
        return [*out, "_Not measured in this run._", ""]
    from benchmarks import memory

    per_key = data["veltrix_beyond_value_bytes_per_key"]
    verdicts["memory"] = (
        f"{per_key:.0f} bytes per key beyond the value "
        f"(plain dict: {data['dict_beyond_value_bytes_per_key']:.0f})",
        data["target_met"],
    )
    out += [
        "`benchmarks/memory.py`: each figure from a fresh process; store: SQLite.",
        "",
        memory.markdown(data),
        "",
        f"![memory]({plot_memory(data)})",
        "",
        f"- Target {TARGETS['memory']}: {_yes(data['target_met'])} — {verdicts['memory'][0]}.",
    ]
    out += [
        "  How: the client keeps one packed `Record` tuple per key instead of the store's "
        "`Entry` plus a record: the decoded text is the very string the hot-path dict holds "
        "(raw bytes only for non-UTF-8 values), provenance, "
        "content type and the secret flag live in one tuple shared by all keys of the store, "
        "and expiry uses 1/64 s slots (one list slot per key) instead of a heap item per key. "
        "`get_entry` rebuilds an identical `Entry` on demand. Versions stay the store's "
        "strings: parsing decimal ones into `int`s saved ~26 bytes per key but cost a "
        "cache miss ~380 ns (section 10).",
    ]
    return [*out, ""]


def section_outage(data: dict[str, Any] | None, verdicts: dict[str, Any]) -> list[str]:
    out = ["## 8. Outage: the store killed under load, and cold starts with it down", ""]
    if data is None:
        return [*out, "_Not measured in this run._", ""]
    from benchmarks import outage

    rows, cold = data["outage"], data["cold_start"]
    failed = sum(r[p]["failed_reads"] for r in rows for p in ("before", "outage", "after"))
    paced = [r for r in rows if r["load"] == "paced"]
    worst = max(r["outage"]["max_ms"] for r in paced) if paced else float("nan")
    slowest_cold = max(r["serve_all_s"] for r in cold)
    recoveries = [r["recovery_s"] for r in rows]
    slowest_recovery = None if None in recoveries else max(recoveries)
    verdicts["outage_failed"] = (f"{failed} failed reads over {len(rows)} runs", failed == 0)
    verdicts["outage_latency"] = (f"worst {worst:.1f} ms", worst <= 50)
    verdicts["cold_start"] = (f"slowest {slowest_cold * 1e3:.0f} ms", slowest_cold <= 1)
    verdicts["recovery"] = (
        "a store never recovered"
        if slowest_recovery is None
        else f"slowest {slowest_recovery:.2f} s",
        slowest_recovery is not None and slowest_recovery <= 2,
    )
    out += [
        "`benchmarks/outage.py` (`python -m benchmarks.outage`): per store, 8 reader threads "
        "read 101 keys through one client (TTL 1 s) while the store is killed with SIGKILL "
        "for 5 s and restarted (SQLite: stalled by a hung process holding its write lock, "
        "then that process killed). *busy* readers loop without pause: there the GIL alone "
        "holds some reads for 100+ ms also while the store is healthy (the *max read before* "
        "column), so the latency target is judged on *paced* readers (1 ms between reads). "
        "Recovery: from a write by another client after the restart until a reader sees it. "
        f"Load average after the section: {data.get('loadavg', [0])[0]:.2f}.",
        "",
        outage.markdown(data),
        "",
    ]
    for key in ("outage_failed", "outage_latency", "cold_start", "recovery"):
        out.append(f"- Target {TARGETS[key]}: {_yes(verdicts[key][1])} — {verdicts[key][0]}.")
    return [*out, ""]


def _aio_stall_verdict(data: dict[str, Any]) -> str:
    """The ≤ 5 ms loop-stall target, judged on this run's default pool against what the
    machine itself costs the loop (the ticker alone, the burst of sleeping tasks)."""
    default = next((row for row in data.get("stalls", []) if row.get("workers") is None), None)
    if default is None:
        return "- Target: the loop's largest stall while 1,000 misses are in flight ≤ 5 ms: not measured."
    stall = default["stall_max_ms"]
    noise = max(data["ticker_alone"]["stall_max_ms"], data["sleep_baseline"]["stall_max_ms"])
    if stall <= 5.0:
        verdict = "**met**"
    elif stall <= noise:
        verdict = (
            "not met as an absolute figure, but no larger than what this machine costs a "
            "loop with no misses at all in the same run"
        )
    else:
        verdict = "**not met**"
    return (
        "- Target: the loop's largest stall while 1,000 misses are in flight ≤ 5 ms: "
        f"{verdict} ({stall:.1f} ms after the spawn iteration with the default pool; "
        f"the ticker alone {data['ticker_alone']['stall_max_ms']:.1f} ms, the sleeping "
        f"tasks {data['sleep_baseline']['stall_max_ms']:.1f} ms). The spawn iteration "
        "itself lasts as long as for any 1,000 tasks started at once: that is asyncio "
        "starting tasks, not the misses."
    )


def section_aio(data: dict[str, Any] | None) -> list[str]:
    out = ["## 9. asyncio: cached reads in a coroutine, the loop under a burst of misses", ""]
    if data is None:
        return [*out, "_Not measured in this run._", ""]
    from benchmarks import aio

    before = data.get("loadavg_before", data.get("loadavg", [0]))[0]
    return [
        *out,
        "`benchmarks/aio.py` (`nice .venv/bin/python -m benchmarks.aio`): reads awaited in "
        "one coroutine (interleaved rounds); the first step of a miss, before it suspends, "
        "against that of `asyncio.sleep`; then 1,000 tasks started at once, each missing a "
        "different key of a store that takes 50 ms, with a 1 ms ticker on the same loop. "
        "The spawn iteration (all 1,000 first steps run in one loop iteration, as for any "
        "burst of tasks) is reported apart from the ticker's lateness after it, while the "
        "misses are in flight and their results come back; the same burst of tasks that "
        "only sleep is the baseline for both, and the ticker alone on an idle loop, for as "
        "long as the slowest burst lasts, shows what the machine itself costs the loop. "
        f"Load average before/after: {before:.2f} / {data.get('loadavg', [0])[0]:.2f}.",
        "",
        aio.markdown(data),
        "",
        _aio_stall_verdict(data),
        "- Before the batched pool (a one-off run of the same benchmark, old and new "
        "`AsyncClient` in interleaved rounds, 5 each, load 1.6 / 1.2, 2026-12-02): spawn "
        "iteration with the old default of 8 threads 47.7 ms, with 32 threads 15.5 ms; "
        "after, 12.1 ms with the default pool (sleeping tasks: 18.9 ms). Under load 4.5-6.0 "
        "the old default's stall after the spawn was 18.6 ms against 3.8 ms after (sleeping "
        "tasks: 3.8 ms). A miss's first step, stepped by hand: 17.5 µs before, 3.9 µs after.",
        "",
    ]


def section_metrics(data: dict[str, Any] | None, verdicts: dict[str, Any]) -> list[str]:
    out = ["## 14. Metrics: the hot path with Prometheus metrics installed", ""]
    if data is None:
        return [*out, "_Not measured in this run._", ""]
    from benchmarks import metrics_overhead

    verdicts["metrics_hit"] = (
        f"{data['added_ns']:.1f} ns added per hit (median; best rounds: "
        f"{data['added_min_ns']:.1f} ns)",
        data["met"],
    )
    return [
        *out,
        f"`benchmarks/metrics_overhead.py`: {data['runs']} interleaved rounds of "
        f"{data['calls_per_run']:,} reads of one cached key; `Client.get` switched between "
        "counting hits and not exactly as `veltrix.metrics.install()` / `uninstall()` "
        "switch it.",
        "",
        metrics_overhead.markdown(data),
        "",
    ]


def section_migration(data: dict[str, Any] | None) -> list[str]:
    out = ["## 7. Migration: keys/s per store pair", ""]
    if data is None:
        return [*out, "_Not measured in this run._", ""]
    out += [
        f"{data['keys']:,} keys per pair, concurrency {data['concurrency']} "
        "(`benchmarks/bench_migrate.py`): each figure is one full `veltrix.migrate` "
        "(list both sides, pre-flight, CAS writes, read-back verify). Test servers on loopback.",
        "",
        "| pair | keys/s | seconds | write calls |",
        "|---|---:|---:|---:|",
    ]
    for pair, f in data["pairs"].items():
        out.append(
            f"| {pair} | {f['keys_per_s']:,.0f} | {f['seconds']:.2f} | {f['write_calls']:,} |"
        )
    out += ["", f"![migration]({plot_migration(data)})", ""]
    return out


def section_parameter_manager(data: dict[str, Any] | None) -> list[str]:
    out = ["## 11. GCP Parameter Manager: miss, cached get, render cost", ""]
    if data is None:
        return [*out, "_Not measured in this run._", ""]
    from benchmarks import bench_gcppm

    out += [
        f"`benchmarks/bench_gcppm.py` against the Parameter Manager test server on loopback "
        f"(our Python server, also serving the referenced secret): a JSON parameter of "
        f"{data['keys_per_parameter']} keys, one a Secret Manager reference; "
        f"{data['store_reads']} store reads and {data['cached_reads']:,} cached reads per "
        "transport. The raw baseline is the cheapest read an application can make with the "
        "official client, a `render_parameter_version` of a version it already knows; the "
        "adapter's miss first lists the versions to find the newest enabled one. Load average "
        f"{data['loadavg_before']:.1f} before, {data['loadavg_after']:.1f} after.",
        "",
        bench_gcppm.markdown(data),
        "",
    ]
    return out


def section_l2_requests(data: dict[str, Any] | None) -> list[str]:
    """Redis requests per key per TTL, against the figures measured before bus-woken waiters."""
    out = ["## 12. L2: Redis requests per key per TTL", ""]
    if data is None:
        return [*out, "_Not measured in this run._", ""]
    before_path = RESULTS_DIR / "l2_requests_before.json"
    before = json.loads(before_path.read_text()) if before_path.exists() else None
    out += [
        f"{data['processes']} processes x 2 reader threads read {data['keys']} keys in a loop "
        f"for {data['duration_s']:g} s, TTL {data['ttl_s']:g} s, one Redis L2, a SQLite store "
        "that counts its reads (`benchmarks/bench_l2_requests.py`; Redis command statistics "
        "reset at the start). Per key per TTL for the whole fleet, cold start included. "
        "`l2_requests` is counted by the clients (a script call is one request); `evalsha` "
        "and all commands come from Redis' `INFO commandstats` (the latter also counts the "
        "commands scripts run). Read latency: every 8th read timed, worst process.",
        "",
    ]
    rows = [
        ("store reads", "store_reads_per_key_per_ttl", "{:.2f}"),
        ("Redis requests (client count)", "l2_requests_per_key_per_ttl", "{:.2f}"),
        ("script calls (`evalsha`)", "redis_evalsha_per_key_per_ttl", "{:.2f}"),
        ("all Redis commands", "redis_commands_per_key_per_ttl", "{:.2f}"),
    ]
    if before is None:
        out += ["| figure | per key per TTL |", "|---|---:|"]
        out += [f"| {name} | {fmt.format(data[k])} |" for name, k, fmt in rows]
    else:
        out += [
            "| figure | before (lock polling) | after (bus) | after / before |",
            "|---|---:|---:|---:|",
        ]
        for name, k, fmt in rows:
            old = before[k]
            ratio = f"{data[k] / old:.2f}x" if old else "n/a (not counted before)"
            old_text = fmt.format(old) if old else "not counted"
            out.append(f"| {name} | {old_text} | {fmt.format(data[k])} | {ratio} |")
        for name, k in (("read p99 ms", "p99"), ("read p99.9 ms", "p999")):
            out.append(
                f"| {name} | {before['read_ms'][k]:.3f} | {data['read_ms'][k]:.3f} | "
                f"{data['read_ms'][k] / before['read_ms'][k]:.2f}x |"
            )
        out.append(
            f"| reads (all processes) | {before['reads']:,} | {data['reads']:,} | "
            f"{data['reads'] / before['reads']:.2f}x |"
        )
        out += [
            "",
            f"Load average (1/5/15 min) after the run: before "
            f"{' / '.join(f'{x:.1f}' for x in before['load_average'])}, after "
            f"{' / '.join(f'{x:.1f}' for x in data['load_average'])}. The before figures "
            "were measured once on the code that polled the lock and are kept in "
            "`benchmarks/results/l2_requests_before.json`; that code had no request counter, "
            "and every request it sent here was a script call (no writes, so no pipelines), "
            "so its `evalsha` row is its request count. Store reads stay at or below one per "
            "key per TTL: on a loaded machine some refreshes run in the background while the "
            "old value is served (the store is judged slow), which stretches a few periods.",
        ]
    out += [
        "",
        "Reproduce: `.venv/bin/python -m benchmarks.bench_l2_requests --redis-url "
        "redis://127.0.0.1:<port>/0` against a Redis no one else uses (`redis-server --port "
        "<port> --save ''`).",
        "",
    ]
    return out


def section_kubernetes(data: dict[str, Any] | None) -> list[str]:
    out = ["## 13. Kubernetes API store: freshness and cached reads", ""]
    if data is None:
        return [*out, "_Not measured in this run._", ""]
    from benchmarks import bench_kubernetes

    return [
        *out,
        "`benchmarks/bench_kubernetes.py` against the Kubernetes test server "
        "(`tests/servers/kubernetes`, Python, HTTPS on loopback; not a real API server): "
        "a write (in a writer process of its own) until the callback of a watching `Client` "
        "in the reading process, with that process idle and with 4 reader threads in a tight "
        "loop; cached reads against `dict.get` (interleaved rounds), and the miss path "
        "against the `kubernetes` client. Reproduce: `scripts/services up kubernetes && "
        ".venv/bin/python -m benchmarks.bench_kubernetes`.",
        "",
        bench_kubernetes.markdown(data),
        "",
    ]


def write(run: dict[str, Any]) -> Path:
    verdicts: dict[str, Any] = {}
    hot = _load("hot_path", run)
    body: list[str] = []
    body += section_hot_path(hot, verdicts)
    body += section_round_trips(run)
    body += section_founding(_load("founding", run), verdicts)
    body += section_fleet(_load("fleet", run), verdicts)
    body += section_freshness(_load("freshness", run), _load("redis_l2", run), verdicts)
    body += section_freshness_load(_load("freshness_load", run))
    body += section_k8s_volume(_load("k8s_volume", run))
    body += section_memory(_load("memory", run), verdicts)
    body += section_migration(_load("migrate", run))
    body += section_outage(_load("outage", run), verdicts)
    body += section_aio(_load("aio", run))
    body += section_cache_paths(_load("cache_paths", run))
    body += section_parameter_manager(_load("gcppm", run))
    body += section_l2_requests(_load("l2_requests", run))
    body += section_kubernetes(_load("kubernetes", run))
    body += section_metrics(_load("metrics_overhead", run), verdicts)

    m = run.get("machine", {})
    head = [
        "# Veltrix benchmark results",
        "",
        f"Generated by `{run.get('command', 'make bench')}` on {run.get('finished', '?')} "
        f"({'quick run' if run.get('quick') else 'full run'}, {_minutes(run):.1f} min of sections). "
        "Every comparison below was measured in this same run; ratios matter more than absolute "
        "figures.",
        "",
        f"- Machine: {m.get('implementation', '')} {m.get('python', '')} on {m.get('platform', '')}, "
        f"{m.get('cpus', '?')} CPUs ({m.get('processor', '')}).",
        "- Load average (1 min) before each section: "
        + ", ".join(
            f"{k} {v.get('loadavg_before', 0):.1f}" for k, v in run.get("sections", {}).items()
        )
        + ".",
    ]
    if run.get("rerun"):
        head.append(f"- Re-run on their own afterwards (`--only`): {', '.join(run['rerun'])}.")
    if run.get("note"):
        head.append(f"- **Note:** {run['note']}")
    versions = run.get("versions", {})
    if versions:
        head.append(
            "- Packages: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + "."
        )
    failed = {k: v for k, v in run.get("sections", {}).items() if v.get("status") != "ok"}
    if failed:
        head.append(
            "- Sections that did not complete in this run (their figures are left out): "
            + "; ".join(
                f"{k} ({v.get('status')}: {v.get('reason', '')})" for k, v in failed.items()
            )
            + "."
        )
    head += [
        "",
        "Reproduce: `make bench` (bootstraps `.venv` with the `bench` extra, starts the "
        "local servers, runs `python -m benchmarks`, stops the servers); "
        "`make bench-quick` or `.venv/bin/python -m benchmarks --quick` for a short run.",
        "",
        "## Targets",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
    ]
    for key, text in TARGETS.items():
        if key in verdicts:
            figure, met = verdicts[key]
            head.append(f"| {text} | {figure} | {_yes(met)} |")
        else:
            head.append(f"| {text} | not measured in this run | n/a |")
    head.append("")
    RESULTS_MD.write_text("\n".join(head + body).rstrip() + "\n")
    return RESULTS_MD


def main() -> None:
    run_file = RESULTS_DIR / "run.json"
    run = json.loads(run_file.read_text()) if run_file.exists() else {}
    print(f"written {write(run)}")


if __name__ == "__main__":
    main()
