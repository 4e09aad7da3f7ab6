"""The columns the differential harness captures with Debezium and with cdcd.

A ``Case`` is one table ``c_<name>`` (``id`` primary key and one column ``v`` of the type
under test) and the changes made to it: a row per value and a row of NULL, then each row
updated to the next value (the NULL row to the first), then every row deleted. Cases
marked ``representative`` are the dozen or so per source that ``make test`` runs; ``make
compat`` runs them all. Values are SQL expressions, written into the statements as is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Case:
    """One table and its changes (``statements``: instead of the generated ones)."""

    name: str
    type: str
    values: tuple[str, ...] = ()
    representative: bool = False
    statements: tuple[str, ...] = ()  # the changes, if not the generated ones
    records: int = 0  # the records those statements give, tombstones included
    columns: str = ""  # the table's columns, if not ``id`` and ``v``
    flavors: frozenset[str] = field(default_factory=frozenset)  # MySQL: only these servers
    cdcd_stops: bool = False  # cdcd stops at a value of it: the case runs on its own

    @property
    def table(self) -> str:
        return f"c_{self.name}"

    def create(self) -> str:
        columns = self.columns or f"id int PRIMARY KEY, v {self.type}"
        return f"CREATE TABLE {self.table} ({columns})"

    def changes(self) -> list[str]:
        """The statements to run, each its own transaction."""
        if self.statements:
            return [s.replace("{t}", self.table) for s in self.statements]
        t, cycle = self.table, (*self.values, "NULL")
        rows = ", ".join(f"({i + 1}, {v})" for i, v in enumerate(cycle))
        out = [f"INSERT INTO {t} (id, v) VALUES {rows}"]
        # Each row to the next value (never its own: MySQL logs no update that changes
        # nothing), the NULL row to the first.
        out += [
            f"UPDATE {t} SET v = {cycle[(i + 1) % len(cycle)]} WHERE id = {i + 1}"
            for i in range(len(cycle))
        ]
        out.append(f"DELETE FROM {t}")
        return out

    def expected_records(self) -> int:
        """Insert, update and delete of each row, and the delete's tombstone."""
        return self.records or 4 * (len(self.values) + 1)


def runs(cases: list[Case]) -> list[list[Case]]:
    """The cases in runs of one Debezium start and one cdcd start each: every case at
    which cdcd stops alone (after START), all the others together."""
    together = [case for case in cases if not case.cdcd_stops]
    return [together] + [[START, case] for case in cases if case.cdcd_stops]


def selected(cases: list[Case], flavor: str = "") -> list[Case]:
    """The cases of this run: all under ``CDCD_COMPAT=full`` (``make compat``), else the
    representative ones; MySQL's for ``flavor`` (``mariadb`` or ``mysql``)."""
    full = os.environ.get("CDCD_COMPAT") == "full"
    return [
        case
        for case in cases
        if (full or case.representative) and (not case.flavors or flavor in case.flavors)
    ]


def _pg(name: str, type_: str, *values: str, rep: bool = False, stops: bool = False) -> Case:
    return Case(name, type_, values, representative=rep, cdcd_stops=stops)


_TOAST = (
    # A value big enough to be TOASTed (random text does not compress); then only the
    # other column changes: under REPLICA IDENTITY DEFAULT the WAL has no copy of it.
    "INSERT INTO {t} VALUES (1, (SELECT string_agg(md5(i::text), '') FROM "
    "generate_series(1, 4000) AS i), 1)",
    "UPDATE {t} SET n = 2 WHERE id = 1",
    "DELETE FROM {t}",
)

PG_SETUP = (
    "CREATE EXTENSION IF NOT EXISTS hstore",
    "CREATE EXTENSION IF NOT EXISTS ltree",
    "CREATE EXTENSION IF NOT EXISTS citext",
    "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'ünïcode')",
    "CREATE DOMAIN price AS numeric(8, 2) CHECK (VALUE > 0)",
    "CREATE DOMAIN short_text AS varchar(5)",
)

# The first transaction a reader sees after a fresh start has a table of its own: what
# only that transaction shows (the previous commit's LSN) then stays out of the others.
START = Case(
    "start",
    "int4 (first transaction)",
    ("1",),
    representative=True,
    columns="id int PRIMARY KEY, v int4",
)

PG_CASES: list[Case] = [
    START,
    _pg("int2", "int2", "-32768", "0", "32767", rep=True),
    _pg("int4", "int4", "-2147483648", "2147483647"),
    _pg("int8", "int8", "-9223372036854775808", "9223372036854775807", rep=True),
    _pg("bool", "bool", "true", "false"),
    _pg("float4", "float4", "1.5", "-3.4e38", "'NaN'", "'Infinity'", "'-Infinity'"),
    _pg("float8", "float8", "0.1", "1e308", "'NaN'", "'-Infinity'", rep=True),
    _pg("numeric_10_3", "numeric(10, 3)", "1.5", "-1234567.891", "0", rep=True),
    _pg("numeric_5_0", "numeric(5)", "99999", "-1"),
    _pg(
        "numeric_free",
        "numeric",
        "1.5",
        "-0.000000000000000000001",
        "12345678901234567890.5",
        rep=True,
    ),
    _pg("numeric_nan", "numeric", "'NaN'", stops=True),
    _pg("numeric_inf", "numeric", "'Infinity'", "'-Infinity'", stops=True),
    _pg("numeric_p_nan", "numeric(10, 2)", "'NaN'", stops=True),
    _pg("money", "money", "12.34", "-0.01", "'92233720368547758.07'", rep=True),
    _pg("char5", "char(5)", "'a'", "'abcde'"),
    _pg("varchar", "varchar(10)", "''", "'ü€😀'"),
    _pg("text", "text", "'plain'", "E'tab\\tquote\"nl\\n'", "'ü€😀'", rep=True),
    _pg("bytea", "bytea", "'\\x00ff10'::bytea", "''::bytea", rep=True),
    _pg("bit1", "bit(1)", "B'0'", "B'1'"),
    _pg("bit8", "bit(8)", "B'00000000'", "B'10000001'", rep=True),
    _pg("bit70", "bit(70)", "B'1' || repeat('0', 68)::bit(68) || B'1'"),
    _pg("varbit", "varbit(20)", "B''", "B'101'", "B'11111111111111111111'"),
    _pg(
        "date",
        "date",
        "'2024-02-29'",
        "'1970-01-01'",
        "'0001-01-01'",
        "'4713-01-01 BC'",
        "'9999-12-31'",
        "'20000-01-01'",
        rep=True,
    ),
    _pg("date_inf", "date", "'infinity'", "'-infinity'"),
    _pg("time", "time", "'00:00'", "'23:59:59.999999'", "'24:00:00'"),
    _pg("time0", "time(0)", "'12:34:56'"),
    _pg("time3", "time(3)", "'12:34:56.789'"),
    _pg(
        "timetz", "timetz", "'12:34:56.5+02'", "'00:00:00-14:59'", "'23:59:59.999999+00'", rep=True
    ),
    _pg(
        "timestamp",
        "timestamp",
        "'2024-01-01 12:00:00.123456'",
        "'1900-01-01'",
        "'0044-03-15 12:00 BC'",
        "'10000-01-01'",
        rep=True,
    ),
    _pg("timestamp0", "timestamp(0)", "'2024-01-01 12:00:01'"),
    _pg("timestamp3", "timestamp(3)", "'2024-01-01 12:00:00.123'"),
    _pg("timestamp_inf", "timestamp", "'infinity'", "'-infinity'"),
    _pg(
        "timestamptz",
        "timestamptz",
        "'2024-01-01 12:00:00.5+05'",
        "'1969-12-31 23:59:59.999999Z'",
        rep=True,
    ),
    _pg("timestamptz0", "timestamptz(0)", "'2024-01-01 12:00:00+05'"),
    _pg("timestamptz_inf", "timestamptz", "'infinity'", "'-infinity'"),
    _pg(
        "interval",
        "interval",
        "'1 year 2 mons 3 days 04:05:06.789'",
        "'-1 day'",
        "'0'",
        "'178000000 years'",
        rep=True,
    ),
    _pg("uuid", "uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"),
    _pg("json", "json", '\'{"b": 1, "a": [true, null]}\'', "'\"x\"'"),
    _pg("jsonb", "jsonb", '\'{"b": 1, "a": [true, null, 1.50]}\'', "'[]'", rep=True),
    _pg("xml", "xml", "'<a x=\"1\">t</a>'"),
    _pg("inet", "inet", "'192.168.0.1/24'", "'::1'", rep=True),
    _pg("cidr", "cidr", "'10.0.0.0/8'"),
    _pg("macaddr", "macaddr", "'08:00:2b:01:02:03'"),
    _pg("macaddr8", "macaddr8", "'08:00:2b:01:02:03:04:05'"),
    _pg("point", "point", "'(1.5, -2)'", rep=True),
    _pg("line", "line", "'{1, -1, 0}'"),
    _pg("lseg", "lseg", "'[(0, 0), (1, 1)]'"),
    _pg("box", "box", "'((0, 0), (1, 1))'"),
    _pg("path", "path", "'[(0, 0), (1, 1), (2, 0)]'"),
    _pg("polygon", "polygon", "'((0, 0), (1, 1), (1, 0))'"),
    _pg("circle", "circle", "'<(0, 0), 2>'"),
    _pg("hstore", "hstore", '\'a=>1, b=>NULL, "c d"=>"é"\'', "''", rep=True),
    _pg("ltree", "ltree", "'top.science.astronomy'"),
    _pg("citext", "citext", "'MiXeD'"),
    _pg("int4range", "int4range", "'[1, 10)'", "'empty'"),
    _pg("int8range", "int8range", "'(,5]'"),
    _pg("numrange", "numrange", "'[1.5, 2.5]'"),
    _pg("tsrange", "tsrange", "'[2024-01-01, 2024-02-01)'"),
    _pg("tstzrange", "tstzrange", "'[2024-01-01 00:00+02, infinity)'"),
    _pg("daterange", "daterange", "'[2024-01-01, 2024-02-01)'"),
    _pg("enum", "mood", "'sad'", "'ünïcode'", rep=True),
    _pg("domain_numeric", "price", "12.5", "999999.99"),
    _pg("domain_varchar", "short_text", "'abc'"),
    _pg("int4_array", "int4[]", "'{1, NULL, 3}'", "'{}'", "'{{1, 2}, {3, 4}}'", rep=True),
    _pg("text_array", "text[]", '\'{a, "b c", NULL, "\\"q\\""}\'', rep=True),
    _pg("numeric_array", "numeric(5, 2)[]", "'{1.5, -2.25}'"),
    _pg("varchar_array", "varchar(5)[]", "'{ab, cd}'"),
    _pg("date_array", "date[]", "'{2024-01-01, 1970-01-02}'"),
    _pg("uuid_array", "uuid[]", "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'"),
    _pg("enum_array", "mood[]", "'{sad, happy}'"),
    _pg("timestamptz_array", "timestamptz[]", "'{2024-01-01 00:00:00+00}'"),
    Case(
        "toast",
        "text (TOAST, unchanged)",
        columns="id int PRIMARY KEY, v text, n int",
        statements=_TOAST,
        records=4,
        representative=True,
    ),
]


def _my(name: str, type_: str, *values: str, rep: bool = False, only: str = "") -> Case:
    flavors = frozenset({only}) if only else frozenset()
    return Case(name, type_, values, representative=rep, flavors=flavors)


# MariaDB and MySQL 8 (``only``: one of them). The session's sql_mode is '' (permissive:
# zero dates, invalid dates are stored as zero); the session time zone is the server's.
MYSQL_CASES: list[Case] = [
    START,
    _my("tinyint", "tinyint", "-128", "127"),
    _my("tinyint_u", "tinyint unsigned", "0", "255"),
    _my("smallint", "smallint", "-32768", "32767"),
    _my("smallint_u", "smallint unsigned", "65535"),
    _my("mediumint", "mediumint", "-8388608", "8388607"),
    _my("mediumint_u", "mediumint unsigned", "16777215"),
    _my("int", "int", "-2147483648", "2147483647", rep=True),
    _my("int_u", "int unsigned", "4294967295", rep=True),
    _my("bigint", "bigint", "-9223372036854775808", "9223372036854775807"),
    _my("bigint_u", "bigint unsigned", "0", "18446744073709551615", rep=True),
    _my("bool", "tinyint(1)", "0", "1", "5"),
    _my("bit1", "bit(1)", "b'0'", "b'1'"),
    _my("bit8", "bit(8)", "b'10000001'", "0"),
    _my(
        "bit64",
        "bit(64)",
        "b'1000000000000000000000000000000000000000000000000000000000000001'",
        rep=True,
    ),
    _my("decimal_10_2", "decimal(10, 2)", "12.5", "-99999999.99", rep=True),
    _my(
        "decimal_65_30",
        "decimal(65, 30)",
        "'12345678901234567890123456789012345.123456789012345678901234567890'",
        "0",
        rep=True,
    ),
    _my("float", "float", "1.5", "-3.4e38"),
    _my("double", "double", "0.1", "1e308", rep=True),
    _my("date", "date", "'2024-02-29'", "'1000-01-01'", "'9999-12-31'", "'0000-00-00'", rep=True),
    _my("date_invalid", "date", "'2024-02-30'", "'2024-00-10'"),
    _my("datetime0", "datetime", "'2024-01-01 12:00:01'", "'0000-00-00 00:00:00'"),
    _my("datetime3", "datetime(3)", "'2024-01-01 12:00:00.123'"),
    _my(
        "datetime6",
        "datetime(6)",
        "'2024-01-01 12:00:00.123456'",
        "'1000-01-01 00:00:00'",
        rep=True,
    ),
    _my("timestamp0", "timestamp NULL", "'2024-01-01 12:00:01'", "'0000-00-00 00:00:00'"),
    _my("timestamp3", "timestamp(3) NULL", "'2038-01-19 03:14:07.999'", rep=True),
    _my("timestamp6", "timestamp(6) NULL", "'1970-01-01 00:00:01.000001'"),
    _my("time0", "time", "'-838:59:59'", "'838:59:59'", "'00:00:00'"),
    _my("time3", "time(3)", "'12:34:56.789'", "'-00:00:00.5'"),
    _my("time6", "time(6)", "'23:59:59.999999'", rep=True),
    _my("year", "year", "1901", "2155", "0"),
    _my("char", "char(10)", "'a'", "''"),
    _my("varchar", "varchar(100)", "'ü€😀'", "'plain'", rep=True),
    _my("varchar_latin1", "varchar(20) CHARACTER SET latin1", "'café'"),
    _my("varchar_utf8mb3", "varchar(20) CHARACTER SET utf8mb3", "'ünï'"),
    _my("tinytext", "tinytext", "'t'"),
    _my("text", "text", "'tab\\tquote\"nl\\n'"),
    _my("mediumtext", "mediumtext", "'m'"),
    _my("longtext", "longtext", "'l'"),
    _my("binary", "binary(4)", "x'00ff'"),
    _my("varbinary", "varbinary(10)", "x'00ff10'", "''"),
    _my("tinyblob", "tinyblob", "x'01'"),
    _my("blob", "blob", "x'00ff10'", rep=True),
    _my("mediumblob", "mediumblob", "x'02'"),
    _my("longblob", "longblob", "x'03'"),
    _my("enum", "enum('a', 'ü', '😀')", "'a'", "'😀'", rep=True),
    _my("set", "set('x', 'ÿ', 'z')", "'x,z'", "''", "'ÿ'"),
    _my(
        "json",
        "json",
        '\'{"b": 1, "a": [true, null, 1.5, "x", 12345678901234567890]}\'',
        "'[]'",
        "'\"s\"'",
        "'3'",
        rep=True,
    ),
    _my("point", "point", "ST_GeomFromText('POINT(1.5 -2)')", rep=True),
    _my("linestring", "linestring", "ST_GeomFromText('LINESTRING(0 0, 1 1)')"),
    _my("polygon", "polygon", "ST_GeomFromText('POLYGON((0 0, 1 1, 1 0, 0 0))')"),
    _my("multipoint", "multipoint", "ST_GeomFromText('MULTIPOINT(0 0, 1 1)')"),
    _my(
        "geometry",
        "geometry",
        "ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1))')",
        "ST_GeomFromText('POINT(3 4)', 4326)",
    ),
]
