"""Tables as the binlog describes them (TABLE_MAP events), and their rows decoded.

A TABLE_MAP is decoded by python-mysql-replication (its layout is intricate) into what
the rows of the table need: the fast row-image decoder (``rows.RowImageDecoder``) when it
handles every column, else the library's own row decoding with cdcd's converters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pymysqlreplication.row_event import TableMapEvent

from cdcd.encoding import Encoding
from cdcd.errors import SourceError
from cdcd.events import TableSchema
from cdcd.schemas.mysql import table_schema
from cdcd.sources.mysql import binlog as bl
from cdcd.sources.mysql.rows import RowImageDecoder, UnsupportedColumn
from cdcd.sources.mysql.types import RowConverter

if TYPE_CHECKING:
    from cdcd.sources.mysql.config import MysqlSourceConfig

_YEAR = 13  # FIELD_TYPE.YEAR

Row = dict[str, Any]
Key = Callable[[Row], Row | None]  # a row's primary-key columns (None: the table has none)


def _no_key(_row: Row) -> None:
    return None


def key_of(columns: tuple[str, ...]) -> Key:
    """The function that picks ``columns`` (the primary key) out of a row."""
    if not columns:
        return _no_key
    if len(columns) == 1:
        (name,) = columns

        def single(row: Row) -> Row:
            return {name: row[name]}

        return single

    def composite(row: Row) -> Row:
        return {column: row[column] for column in columns}

    return composite


@dataclass(slots=True)
class Table:
    schema: str
    name: str
    included: bool
    convert: RowConverter | None = None
    key: Key = _no_key
    decoder: RowImageDecoder | None = None  # the fast path; None: the library decodes
    columns: int = 0
    full_bitmaps: frozenset[bytes] = frozenset()  # columns-present bitmaps of a FULL image
    map_body: bytes = b""  # the TABLE_MAP event's bytes after its header
    library_table: Any = None  # python-mysql-replication's Table, for its row decoding
    schema_item: TableSchema | None = None  # its columns' schema (a captured table's)


_LIBRARY_IS_NUMERIC = TableMapEvent._is_numeric_column


def count_year_as_numeric(year_is_numeric: bool) -> None:
    """The TABLE_MAP's SIGNEDNESS metadata has a bit per numeric column; MariaDB counts
    YEAR among them, MySQL 8 does not. python-mysql-replication 1.0.17 always counts it,
    which shifts every signedness bit after a YEAR column on MySQL (or fails on the
    table map). Make the library count as the server does (one server per process)."""
    if year_is_numeric:
        TableMapEvent._is_numeric_column = staticmethod(_LIBRARY_IS_NUMERIC)
    else:
        TableMapEvent._is_numeric_column = staticmethod(
            lambda column_type: column_type != _YEAR and _LIBRARY_IS_NUMERIC(column_type)
        )


class TableMaps:
    """Makes ``Table``s of TABLE_MAP events, and decodes the rows events the fast path
    does not take. A captured table's database is added to ``table_databases``."""

    def __init__(
        self,
        config: MysqlSourceConfig,
        *,
        flavor: str,
        version: tuple[int, ...],
        checksum: bool,
        options: Encoding,
        table_databases: set[str],
        log: Any = None,
    ) -> None:
        self.config = config
        self.flavor = flavor
        self.version = version
        self.checksum = checksum
        self.options = options
        self.table_databases = table_databases
        self.log = log

    def _library_event(self, packet: bytes, table_map: dict[int, Any] | None = None) -> Any:
        return bl.library_event(
            packet,
            flavor=self.flavor,
            version=self.version,
            checksum=self.checksum,
            table_map=table_map,
        )

    def table(self, packet: bytes, body: bytes) -> Table:
        """The table a TABLE_MAP event (``body``: its bytes after the header) describes."""
        schema, name = bl.table_map_names(packet)
        if not self.config.includes(schema, name):
            return Table(schema, name, included=False, map_body=body)
        self.table_databases.add(schema)
        event = self._library_event(packet)
        try:
            convert = RowConverter.from_table_map(event, self.options)
        except ValueError as exc:
            raise SourceError(f"table {schema}.{name}: {exc}") from None
        key_columns = tuple(c.name for c in event.columns if getattr(c, "is_primary", False))
        try:
            decoder: RowImageDecoder | None = RowImageDecoder(event, self.flavor, self.options)
        except UnsupportedColumn as exc:
            decoder = None
            if self.log is not None:
                self.log.info("slow row decoding", table=f"{schema}.{name}", reason=str(exc))
        count = len(event.columns)
        return Table(
            schema,
            name,
            True,
            convert,
            key_of(key_columns),
            decoder,
            count,
            bl.full_bitmaps(count),
            body,
            event.get_table(),
            table_schema(schema, name, event, key_columns, self.options),
        )

    def rows(
        self,
        kind: int,
        table: Table,
        packet: bytes,
        bitmaps: tuple[bytes, bytes],
        body: bytes,
    ) -> list[Any]:
        """The rows of a rows event whose columns-present ``bitmaps`` (before, after) are
        not the usual ones: after images (write), before images (delete), or (before,
        after) pairs (update), values encoded as Debezium's. The fast decoder takes them
        when every column is present after all; else (a column type it does not handle,
        or a partial row image) the library decodes the event."""
        decoder, columns = table.decoder, table.columns
        update = kind in bl.UPDATE_ROWS
        if decoder is not None and all(bl.all_columns(bitmap, columns) for bitmap in bitmaps):
            return decoder.image_pairs(body) if update else decoder.images(body)
        assert table.convert is not None
        event = self._library_event(packet, {bl.table_id(packet): table.library_table})
        convert = table.convert
        if not update:
            return [convert(row["values"], row.get("none_sources")) for row in event.rows]
        return [
            (
                convert(row["before_values"], row.get("before_none_sources")),
                convert(row["after_values"], row.get("after_none_sources")),
            )
            for row in event.rows
        ]
