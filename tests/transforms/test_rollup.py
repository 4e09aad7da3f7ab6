"""The transaction roll-up with real servers: multi-table transactions each as one
message, in commit order; transactions bigger than max_changes (and cut by
split_after_events) in numbered parts; SIGKILLs under a load of cut transactions: a
read_committed consumer sees every change once inside the roll-ups, parts in order,
none repeated. PostgreSQL and MariaDB, real Kafka."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from offsets_support import offset_history, start_again
from support import Message, RangeWriter, consume, daemon
from transforms_support import database

pytestmark = pytest.mark.integration

SOURCES = ["postgres", "mariadb"]
_KINDS = {"postgres": "postgres", "mariadb": "mysql"}


def _order(n: int) -> tuple[str, tuple[Any, ...]]:
    return ("INSERT INTO {db}.orders (id, customer, amount) VALUES (%s, %s, %s)", (n, f"c{n}", n))


def _rollups_until_last(
    bootstrap: str, topic: str, last_txid_of: Any, timeout: float = 120
) -> list[Message]:
    """The roll-up topic read (read_committed) until a last part that ``last_txid_of``
    recognises as the final transaction's has arrived; then a little longer."""
    deadline = time.monotonic() + timeout
    while True:
        messages = consume(bootstrap, [topic], expect=1, timeout=20, settle=2)
        if any(m.value["last"] and last_txid_of(m.value) for m in messages):
            return consume(bootstrap, [topic], expect=len(messages), timeout=20, settle=2)
        assert time.monotonic() < deadline, f"{len(messages)} roll-ups, the last never came"


def _by_transaction(messages: list[Message]) -> dict[str, list[dict[str, Any]]]:
    parts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in messages:
        parts[message.value["id"]].append(message.value)
    return parts


def _check_parts(parts: list[dict[str, Any]]) -> None:
    """Numbered 1..n in order, none repeated, the last one last, the counts consistent."""
    assert [p["part"] for p in parts] == list(range(1, len(parts) + 1)), parts
    assert [p["last"] for p in parts] == [False] * (len(parts) - 1) + [True]
    before = 0
    for part in parts:
        assert part["changes_before"] == before
        before += len(part["changes"])
    assert parts[-1]["total_changes"] == before
    assert all(p["total_changes"] is None for p in parts[:-1])


@pytest.mark.parametrize("source", SOURCES)
def test_transactions_rolled_up_one_message_each_in_order_big_ones_in_parts(
    request, source, tmp_path: Path, kafka_bootstrap: str
):
    with database(source, request) as db:
        config = db.config(
            kafka_bootstrap,
            rollup={"tables": [f"{db.name}.orders", f"{db.name}.outbox"], "max_changes": 20},
            transactions={"split_after_events": 50},
        )
        event_id = str(uuid.uuid4())
        with daemon(tmp_path, config) as d:
            db.run(
                [
                    _order(1),
                    (
                        "INSERT INTO {db}.outbox VALUES (%s, 'Order', '1', 'Created', %s)",
                        (event_id, '{"n": 1}'),
                    ),
                    ("UPDATE {db}.orders SET amount = 41 WHERE id = 1", ()),
                ]
            )
            db.run([_order(2), ("DELETE FROM {db}.orders WHERE id = 1", ())])
            db.run([_order(n) for n in range(100, 145)])  # 45: parts of 20, 20, 5
            db.run([_order(n) for n in range(200, 320)])  # 120: cut at 50 and 100
            messages = _rollups_until_last(
                kafka_bootstrap,
                f"{db.name}.transactions.rollup",
                lambda v: v["total_changes"] == 120,
            )
            rows = consume(kafka_bootstrap, [f"{db.name}.{db.name}.orders"], expect=1, timeout=3)
            assert d.terminate() == 0
    assert rows == []  # keep_rows = false: the rolled-up tables' own topics get nothing
    assert {m.key for m in messages} == {db.name} and len({m.partition for m in messages}) == 1
    transactions = list(_by_transaction(messages).values())
    assert len(transactions) == 4, [[p["part"] for p in t] for t in transactions]
    for parts in transactions:
        _check_parts(parts)
    first, second, third, fourth = transactions
    (one,) = first
    assert [(c["table"], c["op"]) for c in one["changes"]] == [
        (f"{db.name}.orders", "c"),
        (f"{db.name}.outbox", "c"),
        (f"{db.name}.orders", "u"),
    ]
    assert one["changes"][0]["key"] == {"id": 1} and one["changes"][0]["after"]["amount"] == 1
    assert one["changes"][2]["before"]["amount"] == 1 and one["changes"][2]["after"]["amount"] == 41
    assert one["changes"][1]["after"]["id"] == event_id
    assert one["ts_ms"] > 0 and one["position"]
    (two,) = second
    assert [(c["op"], c["key"]) for c in two["changes"]] == [("c", {"id": 2}), ("d", {"id": 1})]
    assert [len(p["changes"]) for p in third] == [20, 20, 5]
    # Cut by split_after_events after 50 and 100 changes: what was gathered goes out there.
    assert [len(p["changes"]) for p in fourth] == [20, 20, 10, 20, 20, 10, 20]
    ids = [c["key"]["id"] for t in (third, fourth) for p in t for c in p["changes"]]
    assert ids == [*range(100, 145), *range(200, 320)]


_BIG = {
    "postgres": "INSERT INTO {db}.orders (id, customer, amount) "
    "SELECT g, 'c' || g, g FROM generate_series(%s, %s) g",
    "mariadb": "INSERT INTO {db}.orders (id, customer, amount) "
    "SELECT seq, concat('c', seq), seq FROM {db}.seq_%s_to_%s",
}


@pytest.mark.parametrize("source", SOURCES)
def test_sigkill_inside_a_huge_transaction_and_under_load_each_change_once(
    request, source, tmp_path: Path, kafka_bootstrap: str
):
    big_first, big_last = 100_001, 200_000
    total, per_tx = 3000, 30
    with database(source, request) as db:

        def write(ranges):
            for first, last in ranges:
                db.run([_order(n) for n in range(first, last + 1)])

        config = db.config(
            kafka_bootstrap,
            rollup={"tables": [f"{db.name}.orders"], "max_changes": 20},
            # The huge transaction is cut every 2000 changes (a part of 20 ends at each).
            transactions={"split_after_events": 2000},
        )
        topic = f"{db.name}.transactions.rollup"
        with daemon(tmp_path, config) as d:
            # A huge transaction, killed inside it once parts of it are in Kafka.
            db.run(
                [(_BIG[source].replace("%s", str(big_first), 1).replace("%s", str(big_last)), ())]
            )
            early = consume(kafka_bootstrap, [topic], expect=200, settle=0, timeout=120)
            d.kill()
            assert not any(m.value["last"] for m in early), "the kill came after the commit"
            cut = offset_history(kafka_bootstrap, db.name, _KINDS[source])[-1]
            assert cut is not None and cut["index"] > 0, cut
            assert cut["transaction"]["rollup"]["part"] > 1, cut
            start_again(d, timeout=120)
            # Then a load of small transactions (parts of 20 and 10), SIGKILLs under it.
            writer = RangeWriter(write, total, per_tx=per_tx, pause=0.005)
            rng = random.Random()
            writer.start()
            try:
                for _ in range(4):
                    time.sleep(rng.uniform(0.5, 2.0))
                    d.kill()
                    start_again(d, timeout=120)
            finally:
                writer.finish()
            messages = _rollups_until_last(
                kafka_bootstrap,
                topic,
                lambda v: v["changes"] and v["changes"][-1]["key"]["id"] == total,
                timeout=180,
            )
            assert d.terminate() == 0
    transactions = _by_transaction(messages)
    for parts in transactions.values():
        _check_parts(parts)
    huge, *small = transactions.values()
    assert huge[-1]["total_changes"] == big_last - big_first + 1
    # 100,000 changes, cut at each 2000th, the last cut at the very end: 5000 parts of 20
    # (each cut ends one), then the commit with an empty last part.
    assert [len(p["changes"]) for p in huge] == [20] * 5000 + [0]
    assert all([len(p["changes"]) for p in parts] == [20, 10] for parts in small)
    ids = [c["key"]["id"] for m in messages for c in m.value["changes"]]
    counts = Counter(ids)
    duplicates = sum(n - 1 for n in counts.values())
    print(
        f"\nroll-up under SIGKILL ({source}): {len(messages)} parts, {len(transactions)} "
        f"transactions, {len(ids)} changes, {duplicates} duplicates; killed inside the huge "
        f"one after {len(early)} parts (offset index {cut['index']}, next part "
        f"{cut['transaction']['rollup']['part']}), then 4 kills under load"
    )
    assert duplicates == 0, counts.most_common(3)
    # Every change once, in commit order.
    assert ids == [*range(big_first, big_last + 1), *range(1, total + 1)]
    assert len(small) == total // per_tx
