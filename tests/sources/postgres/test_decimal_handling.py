"""A numeric the precise mode cannot encode, end to end: the daemon stops on it, says where
and what to set, acknowledges nothing past it, and streams it once restarted in a mode
that encodes it ([encoding] decimal_handling_mode)."""

from __future__ import annotations

import base64
import re
import time

import pytest
from support import consume, daemon

from cdcd.positions import str_to_lsn

pytestmark = pytest.mark.integration


def wait_for_slot(pg_case, lsn: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while pg_case.slot_confirmed_lsn() < lsn:
        assert time.monotonic() < deadline, "the slot was not confirmed past the first row"
        time.sleep(0.2)


@pytest.mark.parametrize("reader", ["inline", "process"])
def test_a_numeric_nan_stops_the_daemon_until_a_mode_encodes_it(pg_case, tmp_path, reader):
    s = pg_case.schema
    pg_case.execute(
        f"CREATE TABLE {s}.prices "
        "(id int PRIMARY KEY, amount numeric(10,2), free numeric, cost money, rate float8)"
    )
    config = pg_case.config(["prices"])
    config["source"]["reader"] = reader
    topic = pg_case.topic("prices")
    with daemon(tmp_path, config) as d:
        pg_case.execute(f"INSERT INTO {s}.prices VALUES (1, 12.50, 1.50, 3.25, 0.5)")
        [first] = consume(pg_case.bootstrap, [topic], expect=1)
        wait_for_slot(pg_case, first.value["source"]["lsn"])
        pg_case.execute(f"INSERT INTO {s}.prices VALUES (2, 'NaN', 'Infinity', 4, 'NaN')")
        pg_case.execute(f"INSERT INTO {s}.prices VALUES (3, 7.25, 2, 5, 1)")
        assert d.process is not None
        assert d.process.wait(60) == 1
        log = d.log_text()

    errors = [line for line in log.splitlines() if line.startswith("cdcd: error:")]
    assert len(errors) == 1, log[-3000:]
    found = re.fullmatch(
        rf"cdcd: error: cannot encode {s}\.prices\.amount at LSN ([0-9A-F]+/[0-9A-F]+): "
        r"numeric value 'NaN' has no representation in decimal_handling_mode = \"precise\"; "
        r"set \[encoding\] decimal_handling_mode = \"string\" \(or \"double\"\) to encode "
        r"it, then restart",
        errors[0],
    )
    assert found, errors[0]
    nan_lsn = str_to_lsn(found.group(1))
    # The row before it was acknowledged, nothing after it: the slot's confirmed position
    # (where the WAL still needed starts) is at most the change's own LSN.
    assert first.value["source"]["lsn"] < pg_case.slot_confirmed_lsn() <= nan_lsn
    assert len(consume(pg_case.bootstrap, [topic], expect=2, timeout=3)) == 1

    config["encoding"] = {"decimal_handling_mode": "string"}
    (tmp_path / "string").mkdir()
    with daemon(tmp_path / "string", config) as d:
        messages = consume(pg_case.bootstrap, [topic], expect=3)
        assert d.terminate() == 0
    rows = [m.value["after"] for m in messages]
    assert [row["id"] for row in rows] == [1, 2, 3]  # none lost, none repeated
    # written before the switch: precise (a Kafka Connect Decimal, a VariableScaleDecimal)
    assert rows[0] == {
        "id": 1,
        "amount": base64.b64encode((1250).to_bytes(2, "big")).decode(),
        "free": {"scale": 1, "value": base64.b64encode(bytes([15])).decode()},
        "cost": base64.b64encode((325).to_bytes(2, "big")).decode(),
        "rate": 0.5,
    }
    # string mode: SpecialValueDecimal's names for NaN and Infinity, toPlainString for the
    # others, money's amount; float8 is no decimal: Jackson's "NaN" as before.
    assert rows[1] == {
        "id": 2,
        "amount": "NAN",
        "free": "POSITIVE_INFINITY",
        "cost": "4.00",
        "rate": "NaN",
    }
    assert rows[2] == {"id": 3, "amount": "7.25", "free": "2", "cost": "5.00", "rate": 1.0}
    assert messages[1].value["source"]["lsn"] == nan_lsn  # the position the error named


def test_double_mode_writes_numbers_and_jackson_s_non_finite_strings(pg_case, tmp_path):
    s = pg_case.schema
    pg_case.execute(
        f"CREATE TABLE {s}.prices (id int PRIMARY KEY, amount numeric(10,2), free numeric, "
        "cost money, amounts numeric(6,1)[])"
    )
    config = pg_case.config(["prices"])
    config["encoding"] = {"decimal.handling.mode": "double"}  # Debezium's spelling
    with daemon(tmp_path, config) as d:
        pg_case.execute(
            f"INSERT INTO {s}.prices VALUES (1, -1234.56, 0.1, '-$1,234.56', '{{1.5,NULL}}')",
            f"INSERT INTO {s}.prices VALUES (2, 'NaN', '-Infinity', 0, '{{NaN}}')",
        )
        messages = consume(pg_case.bootstrap, [pg_case.topic("prices")], expect=2)
        assert d.terminate() == 0
    assert [m.value["after"] for m in messages] == [
        {"id": 1, "amount": -1234.56, "free": 0.1, "cost": -1234.56, "amounts": [1.5, None]},
        {"id": 2, "amount": "NaN", "free": "-Infinity", "cost": 0.0, "amounts": ["NaN"]},
    ]
