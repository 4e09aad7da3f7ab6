"""Snapshot rows (``op = "r"``) carry exactly the schemas the stream gives for the same
table: the snapshot reader yields the table's ``TableSchema`` from the catalog before its
rows (PostgreSQL; in the daemon and through a scan process)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support import consume, daemon

sys.path.insert(0, str(Path(__file__).parents[1] / "transforms"))
from transforms_support import postgres_db  # noqa: E402

pytestmark = pytest.mark.integration

PG = {
    "items": "id int PRIMARY KEY, price numeric(10,2) NOT NULL, amount numeric, "
    "made timestamp(3), seen timestamptz, day date, doc jsonb, tags text[], flag bit(1), "
    "mood {db}_mood, code varchar(5) NOT NULL"
}
ROW = (
    "INSERT INTO {db}.items VALUES (%s, 12.50, 3.14159, now(), now(), current_date, "
    "'{\"a\": 1}', ARRAY['x'], B'1', 'ok', 'c')"
)


@pytest.mark.parametrize("reader", ["daemon", "process"])
def test_postgres_snapshot_rows_have_the_streams_schema(
    pg_dsn: str, kafka_bootstrap: str, tmp_path: Path, reader: str
) -> None:
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        name = f"s{tmp_path.name[-8:]}".replace("-", "_").lower()
        conn.execute(f"CREATE TYPE {name}_mood AS ENUM ('ok', 'sad')")
    try:
        tables = {"items": PG["items"].replace("{db}", name)}
        with postgres_db(pg_dsn, tables) as db:
            _compare(db, kafka_bootstrap, tmp_path, reader)
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"DROP TYPE IF EXISTS {name}_mood")


def _compare(db, bootstrap: str, tmp_path: Path, reader: str) -> None:
    db.run([(ROW, (1,))])  # before the daemon: read by the initial snapshot
    config = db.config(bootstrap)
    config["sink"]["schemas_enable"] = True
    config["snapshot"] = {"mode": "initial"}
    config["source"]["tables"] = [f"{db.name}\\.items"]
    if reader == "process":
        config["source"]["snapshot_reader"] = "process"
    topic = f"{db.name}.{db.name}.items"
    with daemon(tmp_path, config) as d:
        db.run([(ROW, (2,))])  # streamed
        snapshot, streamed = consume(bootstrap, [topic], expect=2, settle=1)
        assert d.terminate() == 0
    assert snapshot.value["payload"]["op"] == "r" and streamed.value["payload"]["op"] == "c"
    after = snapshot.value["schema"]["fields"][1]
    assert after["name"] == f"{topic}.Value"
    fields = {f["field"]: f for f in after["fields"]}
    assert fields["price"]["parameters"] == {"scale": "2", "connect.decimal.precision": "10"}
    assert fields["mood"]["parameters"] == {"allowed": "ok,sad"}
    assert fields["code"]["optional"] is False
    assert snapshot.value["schema"] == streamed.value["schema"]
    assert snapshot.key["schema"] == streamed.key["schema"]
