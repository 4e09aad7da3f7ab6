"""The rows of a relation: its columns' converters compiled into one function, its key.

pgoutput sends a Relation message before a table's first change (and again after DDL on
it); its columns' types make the converters (``types``) of every row that follows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from cdcd.encoding import DecimalMode, Encoding
from cdcd.errors import DecodeError
from cdcd.events import TableSchema
from cdcd.positions import lsn_to_str
from cdcd.schemas.postgres import column_schema
from cdcd.sources.postgres import pgoutput
from cdcd.sources.postgres.types import make_converter

# Debezium's placeholder for a TOASTed value that an UPDATE left unchanged and the
# server therefore did not send (unavailable.value.placeholder).
UNAVAILABLE_VALUE = "__debezium_unavailable_value"

Row = Callable[[tuple[Any, ...]], dict[str, Any]]
Key = Callable[[dict[str, Any]], dict[str, Any] | None]


def _other_value(convert: Callable[[str], Any], value: Any) -> Any:
    """A column value that is not text: NULL, an unchanged TOASTed value, or binary."""
    if value is None:
        return None
    if value is pgoutput.UNCHANGED_TOAST:
        return UNAVAILABLE_VALUE
    if type(value) is bytes:
        return convert(value.decode())
    return convert(value)


def compile_row(columns: tuple[str, ...], converters: tuple[Callable[[str], Any], ...]) -> Row:
    """A row converter written for one relation: no loop, and no call for text columns
    (the converter ``str``). A value count that does not match raises ValueError, as a
    value its converter refuses does. Column names are passed in as values, never
    written into the source."""
    if not columns:
        return lambda values: {} if not values else _too_many(values)
    bound: dict[str, Any] = {"_other": _other_value}
    entries = []
    for i, convert in enumerate(converters):
        bound[f"n{i}"], bound[f"c{i}"] = columns[i], convert
        direct = f"v{i}" if convert is str else f"c{i}(v{i})"
        entries.append(f"n{i}: {direct} if type(v{i}) is str else _other(c{i}, v{i})")
    names = ", ".join(f"v{i}" for i in range(len(columns)))
    source = f"def row(values):\n    ({names},) = values\n    return {{{', '.join(entries)}}}\n"
    exec(compile(source, f"<row of {len(columns)} columns>", "exec"), bound)
    row: Row = bound["row"]
    return row


def _too_many(values: tuple[Any, ...]) -> dict[str, Any]:
    raise ValueError(f"{len(values)} values for a relation without columns")


def compile_key(key_columns: tuple[str, ...]) -> Key:
    """The function that picks a row's primary-key columns, written for one relation
    (no loop); it returns None when the relation has no primary key."""
    if not key_columns:
        return _no_key
    bound: dict[str, Any] = {f"k{i}": name for i, name in enumerate(key_columns)}
    entries = ", ".join(f"k{i}: row[k{i}]" for i in range(len(key_columns)))
    source = f"def key(row):\n    return {{{entries}}}\n"
    exec(compile(source, f"<key of {len(key_columns)} columns>", "exec"), bound)
    key: Key = bound["key"]
    return key


def _no_key(_row: dict[str, Any]) -> None:
    return None


@dataclass(slots=True)
class Table:
    """A relation as its changes are decoded; ``included``: captured (source.tables).
    ``key(row)``: the row's primary-key columns, None when the table has none."""

    namespace: str
    name: str
    included: bool
    columns: tuple[str, ...]
    converters: tuple[Callable[[str], Any], ...]
    key_columns: tuple[str, ...]  # the primary key; empty when the table has none
    _row: Row = field(init=False, repr=False)
    key: Key = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._row = compile_row(self.columns, self.converters)
        self.key = compile_key(self.key_columns)

    @classmethod
    def of(
        cls,
        relation: pgoutput.Relation,
        included: bool,
        key_columns: tuple[str, ...],
        type_names: dict[int, str],
        encoding: Encoding,
    ) -> Table:
        """The table of a Relation message; ``type_names``: those of the Type messages."""
        columns = [(col.name, col.type_oid, col.typmod) for col in relation.columns]
        return cls.of_columns(
            relation.namespace, relation.name, included, columns, key_columns,
            type_names, encoding,
        )  # fmt: skip

    @classmethod
    def of_columns(
        cls,
        namespace: str,
        name: str,
        included: bool,
        columns: list[tuple[str, int, int]],
        key_columns: tuple[str, ...],
        type_names: dict[int, str],
        encoding: Encoding,
    ) -> Table:
        """The table of columns ``(name, type OID, typmod)`` in the Relation message's
        order; ``type_names``: the type names the Type messages give (``type_name``)."""
        converters = tuple(
            make_converter(type_oid, typmod, type_names.get(type_oid), encoding)
            for _, type_oid, typmod in columns
        )
        names = tuple(column for column, _, _ in columns)
        return cls(namespace, name, included, names, converters, key_columns)

    def row(self, values: tuple[Any, ...], lsn: int) -> dict[str, Any]:
        """The row of one tuple's values, each converted for its column; ``lsn``, the
        change's, names the position in an error."""
        try:
            return self._row(values)
        except (ValueError, DecodeError):
            return self._row_checked(values, lsn)  # raises, naming the column

    def _row_checked(self, values: tuple[Any, ...], lsn: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        name = ""
        try:
            for name, convert, value in zip(self.columns, self.converters, values, strict=True):
                out[name] = _other_value(convert, value)
        except (ValueError, DecodeError) as exc:
            # Stop rather than skip or mangle a value (the position does not move on).
            where = (
                f"{self.namespace}.{self.name}.{name}" if name else f"{self.namespace}.{self.name}"
            )
            raise DecodeError(f"cannot encode {where} at LSN {lsn_to_str(lsn)}: {exc}") from None
        return out


def type_name(message: pgoutput.TypeMsg) -> str:
    """The name a Type message gives a column type, as ``make_converter`` takes it: the
    type's own name (a domain's base type's), without its namespace (pgoutput sends the
    empty string for pg_catalog), as ``hstore``, ``_mood`` or ``int4``."""
    return message.name


def source_block(
    database: str,
    namespace: str,
    name: str,
    ts_us: int,
    sequence: str,
    txid: int | None,
    lsn: int,
) -> dict[str, Any]:
    """The connector's fields of a change's ``source`` block, as Debezium's PostgreSQL
    connector writes them (stream and snapshot alike)."""
    return {
        "ts_ms": ts_us // 1000,
        "ts_us": ts_us,
        "ts_ns": ts_us * 1000,
        "db": database,
        "sequence": sequence,
        "schema": namespace,
        "table": name,
        "txId": txid,
        "lsn": lsn,
        "xmin": None,
    }


async def column_facts(
    conn: psycopg.AsyncConnection[Any], relation_oid: int
) -> dict[str, tuple[bool, list[str] | None]]:
    """Each column's nullability and, for an enum (or an array of one), its labels in
    order: what the schema needs that the Relation message does not say."""
    cur = await conn.execute(
        "SELECT a.attname, NOT a.attnotnull, (SELECT array_agg(e.enumlabel ORDER BY "
        "e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = coalesce(nullif(t.typelem, 0), "
        "t.oid)) FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped",
        (relation_oid,),
    )
    return {row[0]: (row[1], row[2]) for row in await cur.fetchall()}


async def described_table(
    conn: psycopg.AsyncConnection[Any] | None,
    relation: pgoutput.Relation,
    type_names: dict[int, str],
    encoding: Encoding,
) -> tuple[Table, TableSchema | None]:
    """The table of a Relation message and its columns' schema; ``conn`` (None: the table
    is not captured) tells its primary key, its columns' nullability, its enums' labels."""
    if conn is None:
        return Table.of(relation, False, (), type_names, encoding), None
    key_columns = await primary_key_columns(conn, relation.oid)
    table = Table.of(relation, True, key_columns, type_names, encoding)
    facts = await column_facts(conn, relation.oid)
    columns = [(col.name, col.type_oid, col.typmod) for col in relation.columns]
    return table, table_schema(table, columns, type_names, facts, encoding.decimal_mode)


def table_schema(
    table: Table,
    columns: list[tuple[str, int, int]],
    type_names: dict[int, str],
    facts: dict[str, tuple[bool, list[str] | None]],
    decimal_mode: DecimalMode,
) -> TableSchema:
    """The Kafka Connect schema of a table's columns ``(name, type OID, typmod)``."""
    schemas = {}
    for name, type_oid, typmod in columns:
        nullable, labels = facts.get(name, (True, None))
        schemas[name] = column_schema(
            type_oid,
            typmod,
            type_names.get(type_oid),
            nullable=nullable,
            decimal_mode=decimal_mode,
            enum_labels=labels,
        )
    return TableSchema(table.namespace, table.name, schemas, table.key_columns)


async def primary_key_columns(
    conn: psycopg.AsyncConnection[Any], relation_oid: int
) -> tuple[str, ...]:
    """The primary-key columns of a relation, in the key's order (none: empty)."""
    cur = await conn.execute(
        "SELECT a.attname FROM pg_index i "
        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = %s AND i.indisprimary ORDER BY k.ord",
        (relation_oid,),
    )
    return tuple(row[0] for row in await cur.fetchall())
