"""Hot path: ns per cached read, Veltrix against the alternatives, in one run.

    .venv/bin/python -m benchmarks.hot_path [--quick]

Compares a plain ``dict.get``; Veltrix ``Client.get`` (text, typed, ``get_model``);
aws-lambda-powertools parameters (a ``BaseProvider`` subclass, cached ``get``);
Dynaconf ``get``; a pydantic-settings attribute; two floors (a Python method that only
returns the dict value, with ``Client.get``'s signature and with one argument: what any
pure-Python hit costs here; and a plain object's attribute, against the pydantic ones);
and the cheapest honest caches
(``benchmarks/baselines.py``: a hand-written TTL dict, ``cachetools.TTLCache`` with a
lock, ``functools.lru_cache``). Every value is already cached:
this is the cost of the read a service makes on every event.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from pydantic import BaseModel
from pydantic_settings import BaseSettings

import veltrix
from benchmarks._common import compare_ns, machine, package_versions, write_json
from benchmarks.baselines import available as available_baselines

KEY = "payments/timeout_ms"


class Payments(BaseModel):
    timeout_ms: int
    retries: int


class AppSettings(BaseSettings):
    timeout_ms: int = 250


class PythonFloor:
    """The cheapest read a Python method can make: one dict subscript, nothing else.

    Not a cache: the floor any pure-Python ``get`` pays on a hit on this interpreter,
    with ``Client.get``'s signature and with a single argument.
    """

    def __init__(self, values: dict[str, str]) -> None:
        self._values = values

    def get(self, key: str, default: Any = None, type: Any = None) -> Any:
        return self._values[key]

    def get_one(self, key: str) -> Any:
        return self._values[key]


class PlainObject:
    """An attribute of a plain Python object: what a field read costs without pydantic."""

    def __init__(self) -> None:
        self.timeout_ms = 250


#: The floor rows of the table (see :class:`PythonFloor`).
FLOOR_SIGNATURE = "floor: Python method with Client.get's signature"
FLOOR_ONE_ARGUMENT = "floor: one-argument Python method"
FLOOR_ATTRIBUTE = "floor: plain object attribute"


def _candidates() -> tuple[dict[str, tuple[str, dict[str, Any]]], list[Any]]:
    to_close: list[Any] = []
    plain = {KEY: "250"}
    client = veltrix.Client("memory://", cache=veltrix.CachePolicy(ttl=3600))
    to_close.append(client)
    client.put(KEY, "250")
    client.put("payments/retries", "3")
    assert client.get(KEY) == "250" and client.get(KEY, type=int) == 250
    client.get_model("payments", Payments)
    bound = client.bind("payments", Payments)
    candidates: dict[str, tuple[str, dict[str, Any]]] = {
        "dict.get": ("get(key)", {"get": plain.get, "key": KEY}),
        "veltrix Client.get": ("get(key)", {"get": client.get, "key": KEY}),
        FLOOR_SIGNATURE: ("get(key)", {"get": PythonFloor(plain).get, "key": KEY}),
        FLOOR_ONE_ARGUMENT: ("get(key)", {"get": PythonFloor(plain).get_one, "key": KEY}),
        "veltrix Client.get(type=int)": ("get(key, type=int)", {"get": client.get, "key": KEY}),
        "veltrix Client.bind attribute": ("cfg.timeout_ms", {"cfg": bound}),
        "veltrix Client.get_model": (
            "get_model('payments', Payments)",
            {"get_model": client.get_model, "Payments": Payments},
        ),
    }
    try:
        os.environ.setdefault("POWERTOOLS_PARAMETERS_MAX_AGE", "3600")
        from aws_lambda_powertools.utilities.parameters.base import BaseProvider

        class DictProvider(BaseProvider):
            """The smallest Powertools provider: values from a dict."""

            def __init__(self, data: dict[str, str]) -> None:
                super().__init__()
                self.data = data

            def _get(self, name: str, **sdk_options: Any) -> str:
                return self.data[name]

            def _get_multiple(self, path: str, **sdk_options: Any) -> dict[str, str]:
                return {k: v for k, v in self.data.items() if k.startswith(path)}

        provider = DictProvider(dict(plain))
        assert provider.get(KEY, max_age=3600) == "250"
        candidates["powertools BaseProvider.get (cached)"] = (
            "get(key, max_age=3600)",
            {"get": provider.get, "key": KEY},
        )
    except ImportError:
        print("aws-lambda-powertools not installed: skipped", file=sys.stderr)
    try:
        from dynaconf import Dynaconf

        settings = Dynaconf(environments=False, load_dotenv=False)
        settings.set("timeout_ms", 250)
        assert settings.get("timeout_ms") == 250
        candidates["dynaconf settings.get"] = (
            "get(key)",
            {"get": settings.get, "key": "timeout_ms"},
        )
    except ImportError:
        print("dynaconf not installed: skipped", file=sys.stderr)
    app_settings = AppSettings()
    candidates["pydantic-settings attribute"] = ("s.timeout_ms", {"s": app_settings})
    candidates[FLOOR_ATTRIBUTE] = ("o.timeout_ms", {"o": PlainObject()})
    for name, make in available_baselines().items():  # the cheapest honest alternatives
        get = make(plain.__getitem__, 3600.0)
        assert get(KEY) == "250"
        candidates[name] = ("get(key)", {"get": get, "key": KEY})
    return candidates, to_close


def run(quick: bool = False) -> dict[str, Any]:
    candidates, to_close = _candidates()
    calls, runs = (20_000, 15) if quick else (200_000, 41)
    results = compare_ns(candidates, calls=calls, runs=runs)
    for item in to_close:
        item.close()
    base = results["dict.get"]["median_ns"]
    veltrix_ns = results["veltrix Client.get"]["median_ns"]
    for figures in results.values():
        figures["x_dict_get"] = figures["median_ns"] / base
        figures["veltrix_speedup"] = figures["median_ns"] / veltrix_ns
    return {
        "benchmark": "hot_path",
        "command": ".venv/bin/python -m benchmarks.hot_path" + (" --quick" if quick else ""),
        "calls_per_run": calls,
        "runs": runs,
        "machine": machine(),
        "versions": package_versions(
            "veltrix", "aws-lambda-powertools", "dynaconf", "pydantic-settings"
        ),
        "results": results,
    }


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "| read | median ns | p99 ns | x dict.get | Veltrix get is N x faster |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, f in data["results"].items():
        lines.append(
            f"| {name} | {f['median_ns']:.1f} | {f['p99_ns']:.1f} | {f['x_dict_get']:.2f} | "
            f"{f['veltrix_speedup']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (smoke test)")
    args = parser.parse_args(argv)
    data = run(quick=args.quick)
    print(markdown(data))
    if not args.quick:
        print(f"\nwritten {write_json('hot_path', data)}")


if __name__ == "__main__":
    main()
