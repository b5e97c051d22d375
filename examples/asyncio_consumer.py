"""An asyncio event consumer that reads its configuration on every event.

    python examples/asyncio_consumer.py [--events 10000] [--url sqlite:///config.db]

A generator stands in for the broker (aiokafka, SQS, ...). For each event the handler
reads two configuration values through ``veltrix.aio.AsyncClient`` and one feature flag
through OpenFeature (``veltrix.openfeature.VeltrixProvider``); all three are cached
reads, so the loop is never held up by the store. Half-way through, another writer
changes the timeout: the handler sees it as soon as the store's watch delivers it.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator

from openfeature import api

from veltrix import CachePolicy
from veltrix.aio import AsyncClient
from veltrix.openfeature import VeltrixProvider


async def broker(events: int) -> AsyncIterator[dict[str, int]]:
    """Stand-in for a message broker: ``events`` messages, yielding to the loop often."""
    for number in range(events):
        yield {"order": number, "amount": 100 + number % 50}
        if number % 100 == 0:
            await asyncio.sleep(0)


async def consume(url: str, events: int) -> dict[str, int]:
    async with AsyncClient(url, cache=CachePolicy(ttl=30)) as config:
        await config.put("payments/timeout_ms", 250)
        await config.put("payments/max_amount", 140)
        await config.put("flags/new-checkout/enabled", "true")
        api.set_provider_and_wait(VeltrixProvider(config), "consumer")
        flags = api.get_client("consumer")

        seen = {"events": 0, "rejected": 0, "new_checkout": 0, "timeout_changes": 0}
        last_timeout = None
        async for event in broker(events):
            timeout_ms = await config.get("payments/timeout_ms", type=int)
            max_amount = await config.get("payments/max_amount", type=int)
            if await flags.get_boolean_value_async("new-checkout", False):
                seen["new_checkout"] += 1
            if event["amount"] > max_amount:
                seen["rejected"] += 1
            if timeout_ms != last_timeout:
                seen["timeout_changes"] += 1
                last_timeout = timeout_ms
            seen["events"] += 1
            if event["order"] == events // 2:  # another service changes the timeout
                await config.put("payments/timeout_ms", 500)
        api.shutdown()
        return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--url", default="memory://consumer-example")
    args = parser.parse_args()
    started = time.perf_counter()
    seen = asyncio.run(consume(args.url, args.events))
    took = time.perf_counter() - started
    print(
        f"{seen['events']:,} events in {took:.2f} s ({seen['events'] / took:,.0f}/s): "
        f"{seen['rejected']:,} rejected, new checkout on {seen['new_checkout']:,}, "
        f"timeout changed {seen['timeout_changes'] - 1} time(s)"
    )


if __name__ == "__main__":
    main()
