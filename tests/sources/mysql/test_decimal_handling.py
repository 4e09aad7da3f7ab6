"""DECIMAL in decimal.handling.mode string and double ([encoding] decimal_handling_mode),
end to end: the real daemon, MariaDB (and MySQL 8), Kafka; the fast row-image reader for
full row images, the library's decoding for a partial (MINIMAL) one."""

from __future__ import annotations

import pytest
from support import consume, daemon

pytestmark = pytest.mark.integration

DDL = (
    "CREATE TABLE prices (id INT PRIMARY KEY, amount DECIMAL(12,2), tiny DECIMAL(5,5), "
    "big DECIMAL(65,30), whole DECIMAL(30,0), nn DECIMAL(6,3) NOT NULL)"
)
BIG = "-12345678901234567890123456789012345.123456789012345678901234567890"
ROWS = (
    f"INSERT INTO prices VALUES (1, -1234.56, -0.12345, {BIG}, 123456789012345678901234567890, 0),"
    " (2, 0, 0.5, 0.000000000000000000000000000001, -7, 1.5), (3, NULL, NULL, NULL, NULL, -2)"
)

# What Debezium writes: SpecialValueDecimal.fromLogical, toPlainString at the column's scale
# (string) or BigDecimal.doubleValue() (double), through JsonConverter.
EXPECTED = {
    "string": [
        {"id": 1, "amount": "-1234.56", "tiny": "-0.12345", "big": BIG,
         "whole": "123456789012345678901234567890", "nn": "0.000"},
        {"id": 2, "amount": "0.00", "tiny": "0.50000", "big": "0." + "0" * 29 + "1",
         "whole": "-7", "nn": "1.500"},
        {"id": 3, "amount": None, "tiny": None, "big": None, "whole": None, "nn": "-2.000"},
    ],
    "double": [
        {"id": 1, "amount": -1234.56, "tiny": -0.12345, "big": -1.2345678901234568e34,
         "whole": 1.2345678901234568e29, "nn": 0.0},
        {"id": 2, "amount": 0.0, "tiny": 0.5, "big": 1e-30, "whole": -7.0, "nn": 1.5},
        {"id": 3, "amount": None, "tiny": None, "big": None, "whole": None, "nn": -2.0},
    ],
}  # fmt: skip


@pytest.mark.parametrize(("mode", "reader"), [("string", "process"), ("double", "thread")])
def test_decimal_arrives_as_debezium_writes_it(my_case, tmp_path, mode, reader):
    my_case.ddl(DDL)
    config = my_case.config(["prices"], reader=reader)
    config["encoding"] = {"decimal_handling_mode": mode}
    with daemon(tmp_path, config) as d:
        my_case.execute(ROWS)
        with my_case.conn.cursor() as cursor:
            # A partial row image (MINIMAL: only the columns given): decoded by the
            # library and types.RowConverter, not by the fast reader.
            cursor.execute("SET SESSION binlog_row_image = 'MINIMAL'")
            cursor.execute("INSERT INTO prices (id, amount, big, nn) VALUES (4, 99.99, 0.5, 7)")
            cursor.execute("SET SESSION binlog_row_image = 'FULL'")
        messages = consume(my_case.bootstrap, [my_case.topic("prices")], expect=4)
        assert d.terminate() == 0
    assert [m.value["after"] for m in messages[:3]] == EXPECTED[mode]
    partial = messages[3].value["after"]
    assert partial == (
        {"id": 4, "amount": "99.99", "tiny": None, "big": "0.5" + "0" * 29, "whole": None,
         "nn": "7.000"}
        if mode == "string"
        else {"id": 4, "amount": 99.99, "tiny": None, "big": 0.5, "whole": None, "nn": 7.0}
    )  # fmt: skip
