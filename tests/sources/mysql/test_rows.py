"""The fast row-image decoder against python-mysql-replication + the Debezium converters.

Generated rows of every type are written to the real servers (MariaDB and MySQL 8); each
rows event is decoded by both paths from the same bytes and the values must be equal.
The byte formats with arithmetic in them (DECIMAL, TIME2) also get property tests.
"""

from __future__ import annotations

import datetime as dt
import decimal
import random
import struct
import uuid
from fractions import Fraction
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import TableMapEvent, UpdateRowsEvent, WriteRowsEvent

from cdcd.encoding import Encoding, unscaled_base64
from cdcd.events import ChangeEvent
from cdcd.sources.mysql import binlog as bl
from cdcd.sources.mysql.config import MysqlSourceConfig
from cdcd.sources.mysql.rows import RowImageDecoder, _decimal, _time2
from cdcd.sources.mysql.source import MysqlSource
from cdcd.sources.mysql.start import Start
from cdcd.sources.mysql.types import RowConverter

from .conftest import connect

COLUMNS = {
    "ti": ("TINYINT", lambda r: r.randint(-128, 127)),
    "tiu": ("TINYINT UNSIGNED", lambda r: r.randint(0, 255)),
    "si": ("SMALLINT", lambda r: r.randint(-32768, 32767)),
    "siu": ("SMALLINT UNSIGNED", lambda r: r.randint(0, 65535)),
    "mi": ("MEDIUMINT", lambda r: r.randint(-(2**23), 2**23 - 1)),
    "miu": ("MEDIUMINT UNSIGNED", lambda r: r.randint(0, 2**24 - 1)),
    "i": ("INT", lambda r: r.randint(-(2**31), 2**31 - 1)),
    "iu": ("INT UNSIGNED", lambda r: r.randint(0, 2**32 - 1)),
    "bi": ("BIGINT", lambda r: r.randint(-(2**63), 2**63 - 1)),
    "biu": ("BIGINT UNSIGNED", lambda r: r.randint(0, 2**64 - 1)),
    "f": ("FLOAT", lambda r: round(r.uniform(-1e6, 1e6), r.randint(0, 3))),
    "d": ("DOUBLE", lambda r: r.uniform(-1e300, 1e300)),
    "d1": ("DECIMAL(12,2)", lambda r: f"{r.randint(0, 10**10 - 1)}.{r.randint(0, 99):02d}"),
    "d2": (
        "DECIMAL(65,30)",
        lambda r: f"{r.randint(0, 10**35 - 1)}.{r.randint(0, 10**30 - 1):030d}",
    ),
    "d3": ("DECIMAL(10,0)", lambda r: str(r.randint(0, 10**10 - 1))),
    # Non-negative DECIMALs only, none with p = s: python-mysql-replication 1.0.17 itself
    # fails on some negative ones (ConversionSyntax). The fast decoder's DECIMAL is checked
    # against MySQL's format by the property test below, and end to end in test_stream.py.
    "d5": ("DECIMAL(19,9)", lambda r: f"{r.randint(0, 10**10 - 1)}.{r.randint(0, 10**9 - 1):09d}"),
    "c": ("CHAR(5)", lambda r: r.choice(["", "a", "abc", "héé", "ü👍"])),
    "vc": (
        "VARCHAR(300)",
        lambda r: "".join(r.choice("aé😀z ") for _ in range(r.randint(0, 280))),
    ),  # +10 "u" from updates
    "vl": ("VARCHAR(40) CHARACTER SET latin1", lambda r: r.choice(["", "café", "naïve", "x" * 40])),
    "t": ("TEXT", lambda r: "t" * r.randint(0, 2000)),
    "mt": ("MEDIUMTEXT", lambda r: "m" * r.randint(0, 70000)),
    "bn": ("BINARY(4)", lambda r: bytes(r.randint(0, 255) for _ in range(r.randint(0, 4)))),
    "vb": ("VARBINARY(300)", lambda r: bytes(r.randint(0, 255) for _ in range(r.randint(0, 300)))),
    "bl": ("BLOB", lambda r: bytes(r.randint(0, 255) for _ in range(r.randint(0, 500)))),
    "dy": ("DATE", lambda r: dt.date(r.randint(1, 9999), r.randint(1, 12), r.randint(1, 28))),
    "t0": (
        "TIME",
        lambda r: (
            f"{r.choice(['-', ''])}{r.randint(0, 838)}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}"
        ),
    ),
    "t2": (
        "TIME(2)",
        lambda r: (
            f"{r.choice(['-', ''])}{r.randint(0, 838)}:{r.randint(0, 59):02d}:{r.randint(0, 58):02d}.{r.randint(0, 99):02d}"
        ),
    ),
    "t4": (
        "TIME(4)",
        lambda r: (
            f"{r.choice(['-', ''])}{r.randint(0, 838)}:{r.randint(0, 59):02d}:{r.randint(0, 58):02d}.{r.randint(0, 9999):04d}"
        ),
    ),
    "t6": (
        "TIME(6)",
        lambda r: (
            f"{r.choice(['-', ''])}{r.randint(0, 838)}:{r.randint(0, 59):02d}:{r.randint(0, 58):02d}.{r.randint(0, 999999):06d}"
        ),
    ),
    "dt0": (
        "DATETIME",
        lambda r: dt.datetime(
            r.randint(1000, 9999),
            r.randint(1, 12),
            r.randint(1, 28),
            r.randint(0, 23),
            r.randint(0, 59),
            r.randint(0, 59),
        ),
    ),
    "dt3": (
        "DATETIME(3)",
        lambda r: dt.datetime(
            r.randint(1000, 9999),
            r.randint(1, 12),
            r.randint(1, 28),
            r.randint(0, 23),
            r.randint(0, 59),
            r.randint(0, 59),
            r.randint(0, 999) * 1000,
        ),
    ),
    "dt6": (
        "DATETIME(6)",
        lambda r: dt.datetime(
            r.randint(1000, 9999),
            r.randint(1, 12),
            r.randint(1, 28),
            r.randint(0, 23),
            r.randint(0, 59),
            r.randint(0, 59),
            r.randint(0, 999999),
        ),
    ),
    "ts0": (
        "TIMESTAMP NULL",
        lambda r: dt.datetime(
            r.randint(1971, 2037),
            r.randint(1, 12),
            r.randint(1, 28),
            r.randint(0, 23),
            r.randint(0, 59),
            r.randint(0, 59),
        ),
    ),
    "ts1": (
        "TIMESTAMP(1) NULL",
        lambda r: dt.datetime(
            r.randint(1971, 2037),
            r.randint(1, 12),
            r.randint(1, 28),
            1,
            2,
            3,
            r.randint(0, 9) * 100000,
        ),
    ),
    "ts6": (
        "TIMESTAMP(6) NULL",
        lambda r: dt.datetime(
            r.randint(1971, 2037), r.randint(1, 12), r.randint(1, 28), 4, 5, 6, r.randint(0, 999999)
        ),
    ),
    "yr": ("YEAR", lambda r: r.randint(1901, 2155)),
    "en": ("ENUM('a','b','long value')", lambda r: r.choice(["a", "b", "long value"])),
    "se": (
        "SET('x','y','z')",
        lambda r: ",".join(sorted(r.sample(["x", "y", "z"], r.randint(0, 3)))),
    ),
    "b1": ("BIT(1)", lambda r: r.randint(0, 1)),
    "b7": ("BIT(7)", lambda r: r.randint(0, 127)),
    "b64": ("BIT(64)", lambda r: r.randint(0, 2**64 - 1)),
    "js": (
        "JSON",
        lambda r: r.choice(
            ['{"a": 1}', "[1, 2.5, null, true]", '"s"', "{}", '{"k": {"n": [1, {"x": "é"}]}}']
        ),
    ),
    "g": ("GEOMETRY", lambda r: f"POINT({r.randint(-90, 90)} {r.randint(-90, 90)})"),
    "nn": ("INT NOT NULL DEFAULT 0", lambda r: r.randint(0, 5)),
}

_SPATIAL = {"g"}


def _literal(name, value):
    if value is None:
        return "NULL"
    if name in _SPATIAL:
        return f"ST_GeomFromText('{value}')"
    if name.startswith("b") and name[1:].isdigit():
        return f"b'{value:b}'"
    if isinstance(value, bytes):
        return f"X'{value.hex()}'"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


DECIMALS = {"d1": 2, "d2": 30, "d3": 0, "d5": 9}  # column: scale


def _rows(rnd: random.Random, count: int, first_id: int, written: dict) -> list[str]:
    """SQL value lists of generated rows; ``written[id]`` keeps their DECIMAL values."""
    out = []
    for row_id in range(first_id, first_id + count):
        values = [str(row_id)]
        for name, (_, make) in COLUMNS.items():
            value = None if (name != "nn" and rnd.random() < 0.1) else make(rnd)
            if name in DECIMALS:
                written.setdefault(row_id, {})[name] = value
            else:
                values.append(_literal(name, value))
        out.append("(" + ", ".join(values) + ")")
    return out


def _expected_decimal(text: str | None, scale: int, mode: str = "precise") -> object:
    if text is None:
        return None
    if mode == "string":
        return format(decimal.Decimal(text), "f")  # BigDecimal.toPlainString
    if mode == "double":
        return float(Fraction(text))  # BigDecimal.doubleValue: the nearest double
    with decimal.localcontext(decimal.Context(prec=100)):
        return unscaled_base64(int(decimal.Decimal(text).scaleb(scale)))


# The other decimal.handling.modes, decoded from the same bytes.
OTHER_MODES = {mode: Encoding(decimal_mode=mode) for mode in ("string", "double")}
# Every other mode that changes a value of the generated table: both paths decode alike.
NON_DEFAULT = Encoding(
    time_precision_mode="connect", binary_mode="hex", bigint_unsigned_mode="precise"
)


@pytest.fixture(params=["mariadb", "mysql8"])
def server_url(request):
    if request.param == "mariadb":
        return request.getfixturevalue("mysql_url")
    url = request.getfixturevalue("mysql8_url")
    if url is None:
        pytest.skip("no MySQL 8 server in this test environment")
    return url


@pytest.mark.integration
def test_fast_decoder_matches_the_library_on_generated_rows(server_url):
    conn = connect(server_url)
    db = f"rows{uuid.uuid4().hex[:10]}"  # not `random`: hypothesis seeds it alike everywhere
    parts = urlsplit(server_url)
    with conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute("SELECT VERSION()")
        flavor = "mariadb" if "mariadb" in cur.fetchone()[0].lower() else "mysql"
        if flavor == "mariadb":
            cur.execute("SELECT @@gtid_binlog_pos")
            start = {"auto_position": cur.fetchone()[0]}
        else:
            cur.execute("SHOW MASTER STATUS")
            row = cur.fetchone()
            start = {"log_file": row[0], "log_pos": row[1]}
        columns = ", ".join(
            f"{name} {sql}" for name, (sql, _) in COLUMNS.items() if name not in DECIMALS
        )
        decimal_columns = ", ".join(f"{name} {COLUMNS[name][0]}" for name in DECIMALS)
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, {columns})")
        # DECIMALs in a table of their own, checked against what was written: the library
        # itself fails on some of them (decimal.InvalidOperation in 1.0.17).
        cur.execute(f"CREATE TABLE {db}.dec (id INT PRIMARY KEY, {decimal_columns})")
        rnd = random.Random(20261122)
        written: dict[int, dict] = {}
        for batch in range(10):
            cur.execute("BEGIN")
            rows = _rows(rnd, 50, batch * 50 + 1, written)
            cur.execute(f"INSERT INTO {db}.t VALUES " + ", ".join(rows))
            cur.execute(
                f"INSERT INTO {db}.dec VALUES "
                + ", ".join(
                    f"({row_id}, " + ", ".join(_literal(n, v) for n, v in values.items()) + ")"
                    for row_id, values in written.items()
                    if batch * 50 < row_id <= batch * 50 + 50
                )
            )
            cur.execute(f"UPDATE {db}.t SET i = i DIV 2, vc = CONCAT(vc, 'u') WHERE id % 3 = 0")
            cur.execute("COMMIT")
        cur.execute(f"DROP DATABASE {db}")
    conn.close()

    reader = BinLogStreamReader(
        connection_settings={
            "host": parts.hostname,
            "port": parts.port,
            "user": parts.username,
            "passwd": parts.password,
        },
        server_id=4_000_000 + uuid.uuid4().int % 1_000_000,
        blocking=False,
        is_mariadb=flavor == "mariadb",
        only_events=[TableMapEvent, WriteRowsEvent, UpdateRowsEvent],
        only_schemas=[db],
        enable_logging=False,
        **start,
    )
    compared = decimals_checked = 0
    decoders: dict[str, tuple[RowImageDecoder, RowConverter, dict[str, RowImageDecoder]]] = {}
    non_default: dict[str, tuple[RowImageDecoder, RowConverter]] = {}
    non_default_compared = 0
    try:
        for event in reader:
            if isinstance(event, TableMapEvent):
                if event.schema == db:
                    decoders[event.table] = (
                        RowImageDecoder(event, flavor),
                        RowConverter.from_table_map(event),
                        {m: RowImageDecoder(event, flavor, o) for m, o in OTHER_MODES.items()},
                    )
                    non_default[event.table] = (
                        RowImageDecoder(event, flavor, NON_DEFAULT),
                        RowConverter.from_table_map(event, NON_DEFAULT),
                    )
                continue
            decoder, converter, in_modes = decoders[event.table]
            packet = event.packet
            body = packet.read(event.event_size - packet.read_bytes)
            update = isinstance(event, UpdateRowsEvent)
            fast = (
                decoder.image_pairs(body) if update else [(None, r) for r in decoder.images(body)]
            )
            if event.table == "dec":
                for _, row in fast:
                    for name, scale in DECIMALS.items():
                        expected = _expected_decimal(written[row["id"]][name], scale)
                        assert row[name] == expected, (row["id"], name, written[row["id"]][name])
                    decimals_checked += 1
                for mode, in_mode in in_modes.items():
                    for row in in_mode.images(body):
                        for name, scale in DECIMALS.items():
                            text = written[row["id"]][name]
                            assert row[name] == _expected_decimal(text, scale, mode), (mode, text)
                if decimals_checked == 500:
                    break  # the last statement written; others' binlog may go on and on
                continue
            if not update:  # in the non-default modes, both paths alike as well
                fast_decoder, library_converter = non_default[event.table]
                fast_rows = fast_decoder.images(body)
            packet.unread(body)  # the library reads the same bytes again
            if not update:
                for fast_row, r in zip(fast_rows, event.rows, strict=True):
                    library_row = library_converter(r["values"], r["none_sources"])
                    assert fast_row == library_row, (fast_row["id"], NON_DEFAULT)
                    non_default_compared += 1
            if update:
                slow = [
                    (
                        converter(r["before_values"], r["before_none_sources"]),
                        converter(r["after_values"], r["after_none_sources"]),
                    )
                    for r in event.rows
                ]
            else:
                slow = [(None, converter(r["values"], r["none_sources"])) for r in event.rows]
            assert len(fast) == len(slow)
            for fast_pair, slow_pair in zip(fast, slow, strict=True):
                for fast_row, slow_row in zip(fast_pair, slow_pair, strict=True):
                    if slow_row is None:
                        assert fast_row is None
                        continue
                    diff = {
                        k: (fast_row.get(k), v) for k, v in slow_row.items() if fast_row.get(k) != v
                    }
                    assert not diff, f"row {slow_row['id']}: fast vs library {diff}"
                    compared += 1
    finally:
        reader.close()
    assert decimals_checked == 500
    assert non_default_compared >= 500
    assert compared >= 500 + 10 * 2 * 17  # 500 inserts and both images of the updates
    print(f"\n{flavor}: {compared} row images decoded alike by both paths")


@pytest.mark.integration
def test_full_row_images_are_decoded_by_the_fast_path(server_url, monkeypatch):
    """MySQL 8 sets the unused bits of a rows event's columns-present bitmap (0xff for 6
    columns, MariaDB 0x3f): every column is there all the same, and the fast decoder,
    not the library, decodes the rows."""
    library_event, slow = bl.library_event, [0]

    def counted(packet, **kwargs):
        if kwargs.get("table_map") is not None:  # a rows event, not a TABLE_MAP
            slow[0] += 1
        return library_event(packet, **kwargs)

    monkeypatch.setattr(bl, "library_event", counted)
    db = f"fast{uuid.uuid4().hex[:10]}"
    conn = connect(server_url)
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(
            f"CREATE TABLE {db}.t (id BIGINT PRIMARY KEY, customer_id INT NOT NULL, "
            "status VARCHAR(16) NOT NULL, amount DECIMAL(12,2) NOT NULL, note TEXT, "
            "created_at TIMESTAMP(6) NULL)"
        )
        cur.execute("BEGIN")
        cur.execute(
            f"INSERT INTO {db}.t VALUES (1, 10, 'new', 12.50, 'n', '2024-01-01 00:00:00.5'), "
            "(2, 20, 'paid', 0.01, NULL, NULL), (3, 30, 'new', 7.00, 'x', NULL)"
        )
        cur.execute(f"UPDATE {db}.t SET status = 'shipped' WHERE id = 2")
        cur.execute(f"DELETE FROM {db}.t WHERE id = 3")
        cur.execute("COMMIT")
        cur.execute(f"CREATE TABLE {db}.done (id INT)")
        cur.execute(f"DROP DATABASE {db}")
    conn.close()

    source = MysqlSource(
        MysqlSourceConfig(kind="mysql", dsn=server_url, tables=[f"{db}.t"]), name=db
    )
    source._check_sync()
    assert source.info is not None
    stream = bl.BinlogStream(
        source._connect,
        server_id=4_000_000 + uuid.uuid4().int % 1_000_000,
        flavor=source.info.flavor,
        gtid_set=None,
        file=file,
        pos=pos,
        heartbeat_s=1,
    )

    def until_done(packets):
        for packet in packets:
            yield packet
            if packet[5] == bl.QUERY and f"{db}.done".encode() in packet:
                return

    chunks: list = []
    stream.open()
    try:
        source.checksum = stream.checksum
        source.consume(until_done(stream.packets()), Start(None, file, pos), chunks.append)
    finally:
        stream.close()
    changes = [i for chunk in chunks for i in chunk if isinstance(i, ChangeEvent)]
    assert [(c.op, c.key) for c in changes] == [
        ("c", {"id": 1}),
        ("c", {"id": 2}),
        ("c", {"id": 3}),
        ("u", {"id": 2}),
        ("d", {"id": 3}),
    ]
    assert changes[0].after == {
        "id": 1,
        "customer_id": 10,
        "status": "new",
        "amount": "BOI=",
        "note": "n",
        "created_at": "2024-01-01T00:00:00.500000Z",
    }
    assert slow[0] == 0, f"{slow[0]} of 3 rows events decoded by the library ({source.info.flavor})"


def _mysql_decimal_bytes(value: decimal.Decimal, precision: int, scale: int) -> bytes:
    """MySQL's decimal2bin, written from its description, for the property test."""
    dig2bytes = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
    with decimal.localcontext(decimal.Context(prec=100)):
        sign, digits, _ = value.quantize(decimal.Decimal(1).scaleb(-scale)).as_tuple()
    text = "".join(map(str, digits)).rjust(scale + 1, "0")
    integral, fraction = (
        text[: len(text) - scale] if scale else text,
        text[len(text) - scale :] if scale else "",
    )
    integral = (
        integral.lstrip("0").rjust(precision - scale, "0")[-(precision - scale) :]
        if precision - scale
        else ""
    )
    out = bytearray()
    lead = (precision - scale) % 9
    if lead:
        out += int(integral[:lead]).to_bytes(dig2bytes[lead], "big")
    for i in range(lead, len(integral), 9):
        out += int(integral[i : i + 9]).to_bytes(4, "big")
    for i in range(0, scale - scale % 9, 9):
        out += int(fraction[i : i + 9]).to_bytes(4, "big")
    if scale % 9:
        out += int(fraction[scale - scale % 9 :]).to_bytes(dig2bytes[scale % 9], "big")
    if sign:
        out = bytearray(b ^ 0xFF for b in out)
    out[0] ^= 0x80
    return bytes(out)


@st.composite
def decimals(draw):
    precision = draw(st.integers(1, 65))
    scale = draw(st.integers(0, min(30, precision)))
    unscaled = draw(st.integers(-(10**precision) + 1, 10**precision - 1))
    return precision, scale, unscaled


@given(decimals())
def test_decimal_bytes_decode_to_the_unscaled_value(case):
    precision, scale, unscaled = case
    with decimal.localcontext(decimal.Context(prec=100)):
        value = decimal.Decimal(unscaled).scaleb(-scale)
    data = _mysql_decimal_bytes(value, precision, scale)
    decoded, end = _decimal(precision, scale)(b"\x07" + data + b"\x07", 1)
    assert end == 1 + len(data)
    assert decoded == unscaled_base64(unscaled)
    # decimal.handling.mode=string: toPlainString; double: the nearest double
    text, end = _decimal(precision, scale, "string")(data, 0)
    assert end == len(data) and text == format(value, "f")
    double, _ = _decimal(precision, scale, "double")(data, 0)
    assert double == float(Fraction(unscaled, 10**scale))


def _time2_bytes(micros: int, fsp: int) -> bytes:
    """MySQL's my_time_packed_to_binary for a TIME value of ``micros`` microseconds."""
    sign = -1 if micros < 0 else 1
    magnitude = abs(micros)
    seconds, frac = divmod(magnitude, 1_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    packed = sign * ((((hours << 12) | (minutes << 6) | secs) << 24) + frac)
    if fsp in (5, 6):
        return (packed + 0x800000000000).to_bytes(6, "big")
    # C semantics: an arithmetic shift for the integer part, a remainder and divisions
    # that truncate toward zero for the fraction.
    intpart = packed >> 24
    frac = -(abs(packed) % (1 << 24)) if packed < 0 else packed % (1 << 24)

    def c_div(a: int, b: int) -> int:
        return -(abs(a) // b) if a < 0 else a // b

    head = (intpart + 0x800000).to_bytes(3, "big")
    if fsp in (1, 2):
        return head + struct.pack(">B", c_div(frac, 10_000) & 0xFF)
    if fsp in (3, 4):
        return head + struct.pack(">H", c_div(frac, 100) & 0xFFFF)
    return head


@given(
    st.integers(0, 838 * 3600 + 59 * 60 + 59).flatmap(
        lambda s: st.tuples(
            st.just(s), st.integers(0, 999_999), st.sampled_from([0, 2, 4, 6]), st.booleans()
        )
    )
)
def test_time2_bytes_decode_to_microseconds(case):
    seconds, micros, fsp, negative = case
    unit = {0: 1_000_000, 2: 10_000, 4: 100, 6: 1}[fsp]
    value = seconds * 1_000_000 + (micros // unit * unit if fsp else 0)
    if negative:
        value = -value
    data = _time2_bytes(value, fsp)
    decoded, end = _time2(fsp)(data, 0)
    assert end == len(data)
    assert decoded == value
