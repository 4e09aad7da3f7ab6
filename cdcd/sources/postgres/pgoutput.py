"""Decoder of pgoutput logical replication messages (protocol version 1).

The input is the payload of one XLogData ('w') message: a single pgoutput message whose
first byte names its type. Field orders follow PostgreSQL's "Logical Replication Message
Formats" and ``src/backend/replication/logical/proto.c``. Only protocol version 1 is
understood: version 2+ prefixes streamed-transaction messages with an xid and adds message
types (stream start/stop/commit/abort, two-phase) that cdcd never requests; any of those
arrives as an unknown type and raises :class:`~cdcd.errors.DecodeError`.

Integers are big-endian. LSNs, OIDs and xids are unsigned; timestamps and typmods signed.
Strings are NUL-terminated UTF-8 (the database encoding, which cdcd requires to be UTF8).
A namespace is sent as the empty string for ``pg_catalog``; it is kept as sent.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from cdcd.errors import DecodeError

__all__ = [
    "UNCHANGED_TOAST",
    "Begin",
    "Column",
    "Commit",
    "Delete",
    "Insert",
    "LogicalMessage",
    "Message",
    "Origin",
    "Relation",
    "Truncate",
    "TypeMsg",
    "Update",
    "decode",
    "TRUNCATE_CASCADE",
    "TRUNCATE_RESTART_IDENTITY",
    "PG_EPOCH_OFFSET_US",
]

#: Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01 UTC).
PG_EPOCH_OFFSET_US: Final = 946_684_800 * 1_000_000

#: Truncate option bits (proto.c: TRUNCATE_CASCADE, TRUNCATE_RESTART_SEQS).
TRUNCATE_CASCADE: Final = 1
TRUNCATE_RESTART_IDENTITY: Final = 2


class _UnchangedToast:
    """Type of :data:`UNCHANGED_TOAST`; a single instance exists."""

    __slots__ = ()
    _instance: _UnchangedToast | None = None

    def __new__(cls) -> _UnchangedToast:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED_TOAST"

    def __reduce__(self) -> str:
        return "UNCHANGED_TOAST"


#: Value of a TOASTed column that the update did not change: pgoutput does not send it.
UNCHANGED_TOAST: Final = _UnchangedToast()

#: One decoded column value: NULL, unchanged TOAST, text format or binary format.
TupleValue = str | bytes | _UnchangedToast | None


@dataclass(frozen=True, slots=True)
class Begin:
    """A transaction starts; ``final_lsn`` is the LSN of its commit record."""

    final_lsn: int
    commit_ts_us: int
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    """A transaction ends; ``end_lsn`` is where the next one may start."""

    flags: int
    commit_lsn: int
    end_lsn: int
    commit_ts_us: int


@dataclass(frozen=True, slots=True)
class Origin:
    """The transaction was replayed from another node (replication origin ``name``)."""

    commit_lsn: int
    name: str


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a Relation; ``is_key`` marks the replica identity columns."""

    is_key: bool
    name: str
    type_oid: int
    typmod: int


@dataclass(frozen=True, slots=True)
class Relation:
    """Shape of a table, sent before its first change and again after DDL on it.

    ``replica_identity`` is pg_class.relreplident: 'd' default, 'n' nothing, 'f' full,
    'i' index.
    """

    oid: int
    namespace: str
    name: str
    replica_identity: str
    columns: tuple[Column, ...]


@dataclass(frozen=True, slots=True)
class TypeMsg:
    """Name of a non-builtin column type (enum, domain, extension type) by OID.

    A domain is announced with its base type's name (namespace empty for pg_catalog).
    """

    oid: int
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Insert:
    """A row was inserted: one value per Relation column."""

    relation_oid: int
    new: tuple[TupleValue, ...]


@dataclass(frozen=True, slots=True)
class Update:
    """A row was updated.

    ``old_kind`` is 'K' when ``old`` holds the old replica identity (the key changed; the
    other columns are None), 'O' when it holds the whole old row (REPLICA IDENTITY FULL),
    None when no old values were sent.
    """

    relation_oid: int
    old_kind: str | None
    old: tuple[TupleValue, ...] | None
    new: tuple[TupleValue, ...]


@dataclass(frozen=True, slots=True)
class Delete:
    """A row was deleted; ``old`` as in :class:`Update` ('K' key columns, or 'O')."""

    relation_oid: int
    old_kind: str
    old: tuple[TupleValue, ...]


@dataclass(frozen=True, slots=True)
class Truncate:
    """Tables were truncated; ``options`` holds the TRUNCATE_* bits."""

    options: int
    relation_oids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class LogicalMessage:
    """A pg_logical_emit_message(); a non-transactional one comes outside any Begin."""

    transactional: bool
    lsn: int
    prefix: str
    content: bytes


Message = (
    Begin
    | Commit
    | Origin
    | Relation
    | TypeMsg
    | Insert
    | Update
    | Delete
    | Truncate
    | LogicalMessage
)


def _slot_setters(cls: type, *names: str) -> tuple[Callable[[Any, Any], None], ...]:
    return tuple(vars(cls)[name].__set__ for name in names)


# A frozen dataclass's __init__ sets each field through object.__setattr__, which costs more
# than the rest of decoding a small Insert; the row messages are built through their slot
# descriptors instead (same objects, same equality).
_new = object.__new__
_set_insert = _slot_setters(Insert, "relation_oid", "new")
_set_update = _slot_setters(Update, "relation_oid", "old_kind", "old", "new")
_set_delete = _slot_setters(Delete, "relation_oid", "old_kind", "old")

_BEGIN = struct.Struct("!QqI")
_COMMIT = struct.Struct("!BQQq")
_U64 = struct.Struct("!Q")
_U32 = struct.Struct("!I")
_U16 = struct.Struct("!H")
_COLUMN_TYPE = struct.Struct("!Ii")  # type oid (unsigned), typmod (signed)
_TRUNCATE_HEAD = struct.Struct("!IB")
_MESSAGE_HEAD = struct.Struct("!BQ")

_PAD: Final = b"\xff\xff\xff\xff"  # no NUL, and no valid tuple column kind

_unpack_kind_length = struct.Struct("!BI").unpack_from
_unpack_u32 = _U32.unpack_from
_unpack_u16 = _U16.unpack_from
_unpack_u64 = _U64.unpack_from

_NAMES: Final = {
    ord("B"): "Begin",
    ord("C"): "Commit",
    ord("O"): "Origin",
    ord("R"): "Relation",
    ord("Y"): "Type",
    ord("I"): "Insert",
    ord("U"): "Update",
    ord("D"): "Delete",
    ord("T"): "Truncate",
    ord("M"): "logical decoding Message",
}


class _Malformed(Exception):
    """Internal: a structural check failed; decode() turns it into a DecodeError."""


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.find(b"\x00", pos)  # the padding holds no NUL
    if end < 0:
        raise _Malformed(f"string at offset {pos} has no NUL terminator")
    return buf[pos:end].decode(), end + 1


def _tuple(buf: bytes, pos: int, size: int) -> tuple[tuple[TupleValue, ...], int]:
    (ncols,) = _unpack_u16(buf, pos)
    pos += 2
    values: list[TupleValue] = []
    append = values.append
    for _ in range(ncols):
        # Kind and length in one read; for 'n' and 'u' the "length" is the next column's
        # bytes (or the padding) and is ignored.
        kind, length = _unpack_kind_length(buf, pos)
        if kind == 116:  # 't': text format
            pos += 5
            end = pos + length
            if end > size:
                raise _Malformed(f"text value of {length} bytes runs past the end")
            append(buf[pos:end].decode())
            pos = end
        elif kind == 110:  # 'n': NULL
            append(None)
            pos += 1
        elif kind == 117:  # 'u': unchanged TOASTed value
            append(UNCHANGED_TOAST)
            pos += 1
        elif kind == 98:  # 'b': binary format
            pos += 5
            end = pos + length
            if end > size:
                raise _Malformed(f"binary value of {length} bytes runs past the end")
            append(buf[pos:end])
            pos = end
        elif pos >= size:
            raise _Malformed("truncated tuple")
        else:
            raise _Malformed(f"unknown tuple column kind {kind!r} at offset {pos}")
    return tuple(values), pos


def _begin(buf: bytes, size: int) -> tuple[Begin, int]:
    final_lsn, ts, xid = _BEGIN.unpack_from(buf, 1)
    return Begin(final_lsn, ts + PG_EPOCH_OFFSET_US, xid), 1 + _BEGIN.size


def _commit(buf: bytes, size: int) -> tuple[Commit, int]:
    flags, commit_lsn, end_lsn, ts = _COMMIT.unpack_from(buf, 1)
    return Commit(flags, commit_lsn, end_lsn, ts + PG_EPOCH_OFFSET_US), 1 + _COMMIT.size


def _origin(buf: bytes, size: int) -> tuple[Origin, int]:
    (lsn,) = _unpack_u64(buf, 1)
    name, pos = _string(buf, 9)
    return Origin(lsn, name), pos


def _relation(buf: bytes, size: int) -> tuple[Relation, int]:
    (oid,) = _unpack_u32(buf, 1)
    namespace, pos = _string(buf, 5)
    name, pos = _string(buf, pos)
    replica_identity = chr(buf[pos])
    (ncols,) = _unpack_u16(buf, pos + 1)
    pos += 3
    columns = []
    unpack_type = _COLUMN_TYPE.unpack_from
    for _ in range(ncols):
        flags = buf[pos]
        col_name, pos = _string(buf, pos + 1)
        type_oid, typmod = unpack_type(buf, pos)
        pos += 8
        columns.append(Column(bool(flags & 1), col_name, type_oid, typmod))
    return Relation(oid, namespace, name, replica_identity, tuple(columns)), pos


def _type(buf: bytes, size: int) -> tuple[TypeMsg, int]:
    (oid,) = _unpack_u32(buf, 1)
    namespace, pos = _string(buf, 5)
    name, pos = _string(buf, pos)
    return TypeMsg(oid, namespace, name), pos


def _insert(buf: bytes, size: int) -> tuple[Insert, int]:
    (relation_oid,) = _unpack_u32(buf, 1)
    if buf[5] != 78:  # 'N'
        raise _Malformed(f"expected 'N' before the new tuple, got {buf[5]!r}")
    new, pos = _tuple(buf, 6, size)
    message = _new(Insert)
    set_relation_oid, set_new = _set_insert
    set_relation_oid(message, relation_oid)
    set_new(message, new)
    return message, pos


def _update(buf: bytes, size: int) -> tuple[Update, int]:
    (relation_oid,) = _unpack_u32(buf, 1)
    marker = buf[5]
    old_kind: str | None
    if marker == 78:  # 'N': no old tuple (key unchanged, replica identity default/index)
        old_kind = old = None
        new, pos = _tuple(buf, 6, size)
    elif marker == 75 or marker == 79:  # 'K' key columns only, 'O' the whole old row
        old_kind = chr(marker)
        old, pos = _tuple(buf, 6, size)
        if buf[pos] != 78:
            raise _Malformed(f"expected 'N' before the new tuple, got {buf[pos]!r}")
        new, pos = _tuple(buf, pos + 1, size)
    else:
        raise _Malformed(f"expected 'K', 'O' or 'N' after the relation id, got {marker!r}")
    message = _new(Update)
    set_relation_oid, set_old_kind, set_old, set_new = _set_update
    set_relation_oid(message, relation_oid)
    set_old_kind(message, old_kind)
    set_old(message, old)
    set_new(message, new)
    return message, pos


def _delete(buf: bytes, size: int) -> tuple[Delete, int]:
    (relation_oid,) = _unpack_u32(buf, 1)
    marker = buf[5]
    if marker != 75 and marker != 79:
        raise _Malformed(f"expected 'K' or 'O' after the relation id, got {marker!r}")
    old, pos = _tuple(buf, 6, size)
    message = _new(Delete)
    set_relation_oid, set_old_kind, set_old = _set_delete
    set_relation_oid(message, relation_oid)
    set_old_kind(message, chr(marker))
    set_old(message, old)
    return message, pos


def _truncate(buf: bytes, size: int) -> tuple[Truncate, int]:
    count, options = _TRUNCATE_HEAD.unpack_from(buf, 1)
    end = 6 + 4 * count
    if end > size:
        raise _Malformed(f"{count} relation ids announced but the message is too short")
    oids = struct.unpack_from(f"!{count}I", buf, 6)
    return Truncate(options, oids), end


def _message(buf: bytes, size: int) -> tuple[LogicalMessage, int]:
    flags, lsn = _MESSAGE_HEAD.unpack_from(buf, 1)
    prefix, pos = _string(buf, 10)
    (length,) = _unpack_u32(buf, pos)
    pos += 4
    end = pos + length
    if end > size:
        raise _Malformed(f"content of {length} bytes runs past the end")
    return LogicalMessage(bool(flags & 1), lsn, prefix, buf[pos:end]), end


_DECODERS: Final[dict[int, Callable[[bytes, int], tuple[Any, int]]]] = {
    ord("B"): _begin,
    ord("C"): _commit,
    ord("O"): _origin,
    ord("R"): _relation,
    ord("Y"): _type,
    ord("I"): _insert,
    ord("U"): _update,
    ord("D"): _delete,
    ord("T"): _truncate,
    ord("M"): _message,
}
_decoder_for = _DECODERS.get


def _malformed(kind: int, size: int, detail: str) -> str:
    return f"pgoutput {_NAMES[kind]} message ({chr(kind)!r}, {size} bytes) is malformed: {detail}"


def decode(buf: bytes | bytearray | memoryview) -> Message:
    """Decode one pgoutput message; raise DecodeError if it is unknown, truncated or malformed."""
    size = len(buf)
    # The padding lets fixed-size reads run a few bytes past the end without a bounds check
    # each: whatever they read there, the message then ends past ``size`` and is rejected.
    data = buf + _PAD if type(buf) is bytes else b"".join((buf, _PAD))
    decoder = _decoder_for(data[0]) if size else None
    if decoder is None:
        if not size:
            raise DecodeError("empty pgoutput message")
        raise DecodeError(
            f"unknown pgoutput message type {chr(data[0])!r} (byte 0x{data[0]:02x}); "
            "cdcd speaks protocol version 1 without streaming or two-phase messages"
        )
    try:
        message, end = decoder(data, size)
    except (_Malformed, struct.error, IndexError, UnicodeDecodeError) as exc:
        if isinstance(exc, _Malformed):
            detail = str(exc)
        elif isinstance(exc, UnicodeDecodeError):
            detail = f"invalid UTF-8 in a string or text value ({exc.reason})"
        else:
            detail = "truncated"
        raise DecodeError(_malformed(data[0], size, detail)) from exc
    if end != size:
        detail = "truncated" if end > size else f"{size - end} unexpected bytes at the end"
        raise DecodeError(_malformed(data[0], size, detail))
    return message  # type: ignore[no-any-return]
