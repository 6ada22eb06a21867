"""--rate, --key-rate and --group-rate: the real control loop over the in-memory cluster,
on a virtual clock (no sleeping: time moves only when the loop would wait)."""

from __future__ import annotations

import itertools

import pytest

from parafka import ConfigError, ParallelConsumer
from parafka.core.ratelimit import KeyRates, TokenBucket, parse_rate
from parafka.engine.settings import Settings
from parafka.testing.memory import VirtualClock
from parafka.testing.sim.loops import World, rate_between
from tests.unit.cli.test_cli_usage import BASE, HANDLER, usage_error


def test_rate_holds_one_instance_to_its_rate() -> None:
    world = World(partitions=4)
    world.produce(3000, lambda i: str(i % 50).encode())
    world.join(rate=40.0)
    world.run(12)
    times = [t for t, _ in world.starts[0]]
    first = times[0]
    achieved = rate_between(times, first + 2, first + 12)
    assert abs(achieved - 40) <= 0.05 * 40, achieved


def test_a_key_over_its_rate_waits_and_other_keys_go_on() -> None:
    world = World(partitions=2)
    # 40 records of the hot key first, then 200 records of 100 other keys.
    world.produce(40, lambda i: b"hot")
    world.produce(200, lambda i: f"k{i % 100}".encode())
    world.join(key_rate=5.0)
    world.run(10)
    starts = world.starts[0]
    hot = [t for t, key in starts if key == b"hot"]
    others = [t for t, key in starts if key != b"hot"]
    assert len(others) == 200
    first = starts[0][0]
    # Each other key has two records: a burst of two goes at once, so every one of them
    # is done within the first second while the hot key trickles at 5/s.
    assert max(others) - first < 1.0
    assert len(hot) == 40  # all of them, by 7.6 s
    assert 5 * 0.95 <= rate_between(hot, first + 1, first + 7) <= 5 * 1.05
    gaps = [b - a for a, b in itertools.pairwise(hot[2:])]
    assert min(gaps) >= 0.2 - 1e-6  # never faster than the key's rate after its burst
    assert world.loops[0][0].stats().rate_waits > 0


def test_the_group_rate_is_shared_by_assigned_partitions_and_retaken_on_rebalance() -> None:
    world = World(partitions=6)
    world.produce(6000, lambda i: str(i).encode())
    world.join(group_rate=60.0)
    world.run(6)
    alone = world.loops[0][0].pacer.group_share
    assert alone == pytest.approx(60.0)
    for _ in range(2):
        world.join(group_rate=60.0)
    world.run(6)  # a rebalance: each takes 2 of 6 partitions
    shares = [loop.pacer.group_share for loop, _ in world.loops]
    assert shares == [pytest.approx(20.0)] * 3
    start = world.clock() - 4
    total = sum(rate_between([t for t, _ in s], start, world.clock()) for s in world.starts)
    assert abs(total - 60) <= 0.05 * 60, total


def test_rate_parsing_and_bad_values() -> None:
    assert parse_rate("100/s") == parse_rate("6000/min") == parse_rate(100) == 100.0
    with pytest.raises(ConfigError, match=r"rate='fast': 'fast' is not a rate: use N/s"):
        ParallelConsumer(lambda r: None, bootstrap_servers="h:1", group_id="g", topics="t",
                         rate="fast")  # fmt: skip
    with pytest.raises(ConfigError, match=r"key_rate=-1.0 is invalid: use records per second"):
        Settings("h:1", "g", ("t",), key_rate=-1.0)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--rate", "lots"], "'lots' is not a rate: use N/s or N/min, e.g. 100/s"),
        (["--key-rate", "0/s"], "'0/s' is not a rate above 0"),
        (["--group-rate", "5/h"], "--group-rate"),
    ],
)
def test_the_cli_refuses_bad_rates_in_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    assert needle in usage_error(capsys, ["run", HANDLER, *BASE, *argv])


def test_key_rates_space_each_key_and_forget_idle_ones() -> None:
    clock = VirtualClock()
    rates = KeyRates(10.0, burst=2, clock=clock)
    assert rates.take("a") == 0.0 and rates.take("a") == 0.0  # a burst of two
    due = rates.take("a")
    assert due == pytest.approx(0.1)  # then one per 0.1 s
    assert rates.take("b") == 0.0  # another key is not held
    clock.advance(due - clock())
    assert rates.take("a") == 0.0
    clock.advance(1000.0 - clock())
    rates._forget(clock())
    assert len(rates) == 0


def test_token_bucket_allowance_and_rate_change() -> None:
    clock = VirtualClock()
    bucket = TokenBucket(100.0, burst=10, clock=clock)
    assert bucket.available() == 10
    bucket.spend(10)
    clock.advance(0.05 - clock())
    assert bucket.available() == 5
    bucket.set_rate(20.0, burst=2)
    assert bucket.available() == 2


def test_a_key_held_by_its_rate_does_not_fill_the_buffer_for_other_partitions() -> None:
    world = World(partitions=2)
    for _ in range(2000):  # partition 0: one hot key, far more than the buffer
        world.cluster.produce("in", b"v", key=b"hot", partition=0)
    for i in range(300):
        world.cluster.produce("in", b"v", key=f"k{i}".encode(), partition=1)
    world.join(key_rate=5.0, max_buffered=200)
    world.run(5)
    others = [t for t, key in world.starts[0] if key != b"hot"]
    # Fair share pauses the hot partition and gives back what it holds beyond its share,
    # so the other partition's records are fetched and run.
    assert len(others) == 300
