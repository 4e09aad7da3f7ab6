"""The outbox router with real servers: an order and its outbox row written in one
transaction give exactly one outbox message (topic, key, value, header); the clean-up
DELETE publishes nothing; a SIGKILLed daemon under an outbox load loses and repeats
nothing for a read_committed consumer. PostgreSQL and MariaDB, real Kafka."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from offsets_support import start_again
from support import RangeWriter, consume, daemon, unique_name
from transforms_support import database

pytestmark = pytest.mark.integration

SOURCES = ["postgres", "mariadb"]


def _outbox_row(aggregate: str, key: str, payload: dict) -> tuple[str, tuple]:
    return (
        "INSERT INTO {db}.outbox (id, aggregatetype, aggregateid, type, payload) "
        "VALUES (%s, %s, %s, %s, %s)",
        (str(uuid.uuid4()), aggregate, key, "OrderCreated", json.dumps(payload)),
    )


@pytest.mark.parametrize("source", SOURCES)
def test_an_order_and_its_outbox_row_give_one_message_and_the_cleanup_nothing(
    request, source, tmp_path: Path, kafka_bootstrap: str
):
    with database(source, request) as db:
        aggregate = unique_name("Order")
        config = db.config(
            kafka_bootstrap,
            outbox={
                "tables": [f"{db.name}.outbox"],
                "additional_placement": ["type:header:eventType"],
            },
        )
        with daemon(tmp_path, config) as d:
            event_id = str(uuid.uuid4())
            db.run(
                [
                    ("INSERT INTO {db}.orders VALUES (1, 'ann', 40, NULL, NULL)", ()),
                    (
                        "INSERT INTO {db}.outbox VALUES (%s, %s, %s, %s, %s)",
                        (event_id, aggregate, "1", "OrderCreated", '{"order": 1, "amount": 40}'),
                    ),
                ]
            )
            db.run([("DELETE FROM {db}.outbox WHERE id = %s", (event_id,))])
            # After the clean-up: a marker order, so that the DELETE was surely read.
            db.run([("INSERT INTO {db}.orders VALUES (2, 'bob', 1, NULL, NULL)", ())])
            orders = consume(kafka_bootstrap, [f"{db.name}.{db.name}.orders"], expect=2)
            topic = f"outbox.event.{aggregate}"
            outbox = consume(kafka_bootstrap, [topic], expect=1, settle=2)
            assert d.terminate() == 0
            assert "outbox" not in {m.topic.rsplit(".", 1)[-1] for m in orders}
            assert [m.value["after"]["id"] for m in orders] == [1, 2]
    assert len(outbox) == 1, outbox
    message = outbox[0]
    assert message.key == "1"
    # Not expanded (Debezium's default): the payload column's JSON text as a string.
    assert isinstance(message.value, str)
    assert json.loads(message.value) == {"order": 1, "amount": 40}
    assert message.headers == [("id", event_id.encode()), ("eventType", b"OrderCreated")]
    # No record of the outbox table's own topic, none for the DELETE.
    leftovers = consume(
        kafka_bootstrap, [f"{db.name}.{db.name}.outbox"], expect=1, timeout=3, settle=0
    )
    assert leftovers == []


@pytest.mark.parametrize("source", SOURCES)
def test_sigkill_under_an_outbox_load_loses_and_repeats_nothing(
    request, source, tmp_path: Path, kafka_bootstrap: str
):
    total = 3000
    with database(source, request) as db:
        aggregate = unique_name("Load")

        def write(ranges):
            for first, last in ranges:
                rows = [_outbox_row(aggregate, str(i), {"n": i}) for i in range(first, last + 1)]
                # Written and cleaned up in one transaction, as outbox users do.
                db.run([*rows, ("DELETE FROM {db}.outbox WHERE aggregatetype = %s", (aggregate,))])

        config = db.config(
            kafka_bootstrap,
            outbox={"tables": [f"{db.name}.outbox"], "expand_json_payload": True},
        )
        writer = RangeWriter(write, total, per_tx=20, pause=0.005)
        rng = random.Random()
        with daemon(tmp_path, config) as d:
            writer.start()
            try:
                for _ in range(5):
                    time.sleep(rng.uniform(0.5, 2.0))
                    d.kill()
                    start_again(d, timeout=120)
            finally:
                writer.finish()
            messages = consume(
                kafka_bootstrap, [f"outbox.event.{aggregate}"], expect=total, timeout=180, settle=3
            )
            assert d.terminate() == 0
    counts = Counter(int(m.key) for m in messages)
    missing = set(range(1, total + 1)) - set(counts)
    duplicates = sum(n - 1 for n in counts.values())
    print(f"\noutbox under SIGKILL ({source}): {len(messages)} messages, {duplicates} duplicates")
    assert not missing, sorted(missing)[:5]
    assert duplicates == 0, counts.most_common(3)
    assert all(m.value == {"n": int(m.key)} for m in messages)  # expanded JSON
