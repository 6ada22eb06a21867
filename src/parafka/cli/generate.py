"""Test data for `parafka produce --generate`, the examples and the demo. Pure.

Each generator yields `(key, value)` pairs of bytes, the same for the same seed:

- `names`: `{"first_name", "last_name"}` JSON, the md5 transformer's input;
- `orders`: `{"order_id", "customer", "amount", "items"}` JSON keyed by customer;
- `sleep:MIN:MAX`: `job:milliseconds` jobs keyed by customer, the IO-bound demo's input;
- `weblog`: web request events, the anomaly detector's input: its generator is the
  example's own (`examples.anomaly.generator:generate`), loaded the way `parafka run`
  loads a handler, so it needs a checkout's root as the current directory and numpy
  (`pip install -e '.[examples]'`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

from parafka.core.errors import ConfigError

Pair = tuple[bytes | None, bytes]
KINDS = ("orders", "names", "sleep:MIN:MAX", "weblog")

FIRST_NAMES = (
    "Ada", "Alan", "Barbara", "Claude", "Dennis", "Edsger", "Frances", "Grace", "Guido",
    "Hedy", "John", "José", "Ken", "Linus", "Margaret", "Niklaus", "Radia", "Sophie", "Zoë",
)  # fmt: skip
LAST_NAMES = (
    "Allen", "Bartik", "Cerf", "Dijkstra", "Hamilton", "Hopper", "Kernighan", "Knuth",
    "Lamarr", "Liskov", "Lovelace", "McCarthy", "Perlman", "Ritchie", "Rossum", "Shannon",
    "Thompson", "Torvalds", "Turing", "Wilson", "Wirth", "Ångström", "O'Neil",
)  # fmt: skip
PRODUCTS = ("book", "lamp", "mug", "pen", "plant", "poster", "socks", "tea")


def names(n: int, seed: int = 0) -> list[dict[str, str]]:
    """`n` name events, the same for the same seed."""
    rng = random.Random(seed)
    return [
        {"first_name": rng.choice(FIRST_NAMES), "last_name": rng.choice(LAST_NAMES)}
        for _ in range(n)
    ]


def encode(event: dict[str, Any]) -> bytes:
    """An event as the producer sends it: compact UTF-8 JSON."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def generator(spec: str) -> Callable[[int, int, int], Iterator[Pair]]:
    """The generator a `--generate` value names: a function of (count, keys, seed).

    ConfigError naming the choices for anything else.
    """
    kind, _, rest = spec.partition(":")
    if kind == "names":
        return _names
    if kind == "orders":
        return _orders
    if kind == "weblog":
        return _weblog
    if kind == "sleep":
        low, high = _sleep_range(spec, rest)
        return lambda count, keys, seed: _sleep(count, keys, seed, low, high)
    raise ConfigError(f"unknown generator {spec!r}: use one of {', '.join(KINDS)}")


def _key(index: int, keys: int, prefix: str) -> bytes:
    return f"{prefix}-{index % keys}".encode()


def _names(count: int, keys: int, seed: int) -> Iterator[Pair]:
    for index, event in enumerate(names(count, seed)):
        yield _key(index, keys, "name"), encode(event)


def _orders(count: int, keys: int, seed: int) -> Iterator[Pair]:
    rng = random.Random(seed)
    for index in range(count):
        customer = f"customer-{rng.randrange(keys)}"
        items = [rng.choice(PRODUCTS) for _ in range(rng.randint(1, 3))]
        order = {
            "order_id": index,
            "customer": customer,
            "amount": round(rng.uniform(5, 200), 2),
            "items": items,
        }
        yield customer.encode(), encode(order)


def _sleep_range(spec: str, rest: str) -> tuple[float, float]:
    try:
        low_text, high_text = rest.split(":")
        low, high = float(low_text), float(high_text)
    except ValueError:
        raise ConfigError(
            f"generator {spec!r} is not sleep:MIN:MAX: write milliseconds, e.g. sleep:10:30"
        ) from None
    if not 0 <= low <= high:
        raise ConfigError(f"generator {spec!r}: use 0 <= MIN <= MAX milliseconds")
    return low, high


def sleep_jobs(
    count: int, keys: int, partitions: int, low_ms: float, high_ms: float, seed: int
) -> list[tuple[int, bytes, bytes]]:
    """`count` IO-bound jobs `(partition, key, b"<job id>:<milliseconds>")` over `keys`
    keys, each key as often as the others, in a shuffled order (the demo's sleep scenes use
    the same format). A key always goes to partition `key % partitions`, so partitions get
    the same share (partition mode is not held back by one partition being longer).
    """
    rng = random.Random(seed)
    key_indexes = [i % keys for i in range(count)]
    rng.shuffle(key_indexes)
    return [
        (k % partitions, b"customer-%d" % k, b"%d:%.2f" % (job, rng.uniform(low_ms, high_ms)))
        for job, k in enumerate(key_indexes)
    ]


def _sleep(count: int, keys: int, seed: int, low: float, high: float) -> Iterator[Pair]:
    for _partition, key, value in sleep_jobs(count, keys, 1, low, high, seed):
        yield key, value


WEBLOG = "examples.anomaly.generator"  # its generate() and encode()


def _weblog(count: int, keys: int, seed: int) -> Iterator[Pair]:
    from parafka.core.loader import load_target

    try:
        generate, encode_event = (
            load_target(f"{WEBLOG}:{name}") for name in ("generate", "encode")
        )
    except ConfigError:
        raise ConfigError(
            "--generate weblog needs the repository's examples/ and numpy: run it from the "
            "root of a parafka checkout after pip install -e '.[examples]'"
        ) from None
    for event in generate(count, seed=seed).events:
        yield event["ip"].encode(), encode_event(event)
