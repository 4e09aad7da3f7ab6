"""Selected values as the text protocol sends them (``snapshot_wire``), encoded exactly as
the binlog stream encodes them.

The general way, for every type, is the one ``snapshot_values`` describes: the bytes in
pymysql's form (decoded and converted as pymysql would: ``form``), then in
python-mysql-replication's (``to_library``), then the stream's converter
(``types.make_converter``). The columns of the common types skip the Python objects in
between, from the server's text straight to Debezium's encoding:

- integers (but BIGINT UNSIGNED): ``int`` of the digits;
- DECIMAL: the text has exactly the column's scale, so its digits without the point are
  the unscaled value, which ``cdcd.encoding`` writes in the decimal mode;
- DATETIME: ``datetime.fromisoformat``, then the epoch ms/µs as the stream computes them
  (ms in ``time.precision.mode=connect``);
  DATE: its days since the epoch; a zero or invalid date fails the parse and takes the
  general way (None for the library, then the column's fallback);
- TIMESTAMP (read in UTC): the text is Debezium's ISO form once 'T' and 'Z' are in (its
  fraction has exactly the column's digits); the zero TIMESTAMP takes the general way;
- text (not binary): decoded as pymysql decodes it, which is what the stream's text
  converter gives back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from cdcd.encoding import Encoding, unscaled_encoder
from cdcd.sources.mysql import types as mtypes

Decode = Callable[[bytes], Any]
Form = tuple[str | None, Callable[[Any], Any] | None]  # pymysql's (encoding, converter)

_INTEGERS = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint"}
_TEXT = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext"}
_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_DAY = dt.date(1970, 1, 1).toordinal()
_MICROSECOND = dt.timedelta(microseconds=1)


def pymysql_form(form: Form) -> Decode:
    """A raw value as pymysql gives it (``MySQLResult._read_row_from_packet``)."""
    encoding, converter = form
    if encoding is None:
        return converter if converter is not None else _identity
    if converter is None:
        return lambda raw: raw.decode(encoding)
    return lambda raw: converter(raw.decode(encoding))


def column_decoder(
    column: Any,
    form: Form,
    to_library: Callable[[Any], Any] | None,
    options: Encoding,
) -> tuple[Decode, Any]:
    """How a column's non-NULL raw value becomes its encoded value, and NULL's value."""
    geometry_type = column.geometry_type if column.type == 255 else None
    convert = mtypes.make_converter(
        column, optional=column.nullable, geometry_type=geometry_type, options=options
    )
    null = convert(None)
    pymysql = pymysql_form(form)

    def general(raw: bytes) -> Any:
        value = pymysql(raw)
        if to_library is not None:
            value = to_library(value)
        return convert(value)

    fast = _fast(column, form, options, general)
    return (fast or general), null


def _fast(column: Any, form: Form, options: Encoding, general: Decode) -> Decode | None:
    kind = column.data_type
    if kind in _INTEGERS and not (kind == "bigint" and column.unsigned):
        return int
    if kind in ("decimal", "numeric"):
        encode = unscaled_encoder(options.decimal_mode, column.decimals)
        return lambda raw: encode(int(raw.replace(b".", b"")))
    if kind == "datetime":
        # milliseconds for fsp <= 3, and always in time.precision.mode=connect
        millis = column.fsp <= 3 or options.time_precision_mode == "connect"
        return _datetime(general, 1000 if millis else 1)
    if kind == "date":
        return _date(general)
    if kind == "timestamp":
        return _timestamp(general)
    if kind in _TEXT and form[0] is not None and column.character_set_name != "binary":
        encoding = form[0]
        return lambda raw: raw.decode(encoding)
    return None


def _datetime(general: Decode, per: int) -> Decode:
    fromisoformat = dt.datetime.fromisoformat

    def decode(raw: bytes) -> Any:
        try:
            value = fromisoformat(raw.decode())
        except ValueError:  # a zero or invalid date
            return general(raw)
        micros: int = (value - _EPOCH) // _MICROSECOND
        return micros // per

    return decode


def _date(general: Decode) -> Decode:
    fromisoformat = dt.date.fromisoformat

    def decode(raw: bytes) -> Any:
        try:
            return fromisoformat(raw.decode()).toordinal() - _EPOCH_DAY
        except ValueError:  # a zero or invalid date
            return general(raw)

    return decode


def _timestamp(general: Decode) -> Decode:
    def decode(raw: bytes) -> Any:
        if raw.startswith(b"0000"):  # the zero TIMESTAMP
            return general(raw)
        return raw.decode().replace(" ", "T") + "Z"

    return decode


def _identity(value: Any) -> Any:
    return value
