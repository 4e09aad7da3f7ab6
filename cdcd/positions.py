"""Source positions: where a stream can be resumed from.

A position is an immutable value that a source hands out with each committed
transaction and takes back to resume. The core compares nothing inside it; it only
stores it (as JSON, via ``to_dict``) and gives it back to the source that made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


def lsn_to_str(lsn: int) -> str:
    """Format a PostgreSQL LSN the way PostgreSQL prints it (``16/B374D848``)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def str_to_lsn(text: str) -> int:
    """Parse a PostgreSQL LSN written as ``XXX/XXX``."""
    try:
        high, low = text.split("/")
        return (int(high, 16) << 32) | int(low, 16)
    except ValueError as exc:
        raise ValueError(f"not an LSN: {text!r} (expected the form 16/B374D848)") from exc


class Position:
    """Base class of source positions."""

    kind: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def numbers(self) -> list[tuple[str, dict[str, str], int]]:
        """The position as numbers, for the metrics (``cdcd_source_<name>{labels}``):
        ``(name, labels, value)`` for each part of it that is a number."""
        return []


@dataclass(frozen=True, slots=True)
class PgPosition(Position):
    """A point in a PostgreSQL logical replication stream.

    ``commit_lsn`` is the end LSN of the last transaction written whole;
    ``index`` counts the events of the *next* transaction already written when a huge
    transaction is split (0 when the position is at a transaction boundary). Several
    events share one LSN, so the pair, not the LSN alone, is the resume key.
    """

    kind: ClassVar[str] = "postgres"
    commit_lsn: int
    index: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "lsn": lsn_to_str(self.commit_lsn), "index": self.index}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PgPosition:
        return cls(commit_lsn=str_to_lsn(data["lsn"]), index=int(data.get("index", 0)))

    def __str__(self) -> str:
        return f"{lsn_to_str(self.commit_lsn)}#{self.index}"

    def numbers(self) -> list[tuple[str, dict[str, str], int]]:
        return [("lsn", {}, self.commit_lsn)]


@dataclass(frozen=True, slots=True)
class MysqlPosition(Position):
    """A point in a MySQL/MariaDB binlog, after a whole transaction.

    ``gtid_set`` is the set of transactions already written (MySQL ``uuid:1-100,...``,
    MariaDB ``domain-server-seq,...``), None when the server runs without GTIDs;
    ``file``/``pos`` is where the next transaction starts. ``index`` counts the events of
    that next transaction already written when a huge transaction is split (0 at a
    transaction boundary). Resuming prefers the GTID set, which survives a failover to
    another server; file/pos is the fallback. ``server`` names the server the binlog was
    read from (MySQL ``uuid:<server_uuid>``, MariaDB ``id:<server_id>``), so that a
    file/pos can be checked against that server's binlogs (a RESET MASTER since).
    """

    kind: ClassVar[str] = "mysql"
    flavor: str  # "mysql" or "mariadb"
    gtid_set: str | None
    file: str
    pos: int
    index: int = 0
    server: str | None = None

    def to_dict(self) -> dict[str, Any]:
        value = {
            "kind": self.kind,
            "flavor": self.flavor,
            "gtid_set": self.gtid_set,
            "file": self.file,
            "pos": self.pos,
            "index": self.index,
        }
        if self.server is not None:
            value["server"] = self.server
        return value

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MysqlPosition:
        return cls(
            flavor=data["flavor"],
            gtid_set=data.get("gtid_set"),
            file=data["file"],
            pos=int(data["pos"]),
            index=int(data.get("index", 0)),
            server=data.get("server"),
        )

    def __str__(self) -> str:
        where = self.gtid_set if self.gtid_set is not None else f"{self.file}:{self.pos}"
        return f"{where}#{self.index}" if self.index else where

    def numbers(self) -> list[tuple[str, dict[str, str], int]]:
        """The binlog file's number (``mysql-bin.000042``: 42), the offset in it, and the
        last transaction number of each GTID source (MySQL: ``uuid[:tag]``, MariaDB: the
        domain)."""
        from cdcd.sources.mysql.gtid import latest_sequences  # GTID sets are parsed there

        out: list[tuple[str, dict[str, str], int]] = []
        suffix = self.file.rpartition(".")[2]
        if suffix.isdigit():
            out.append(("binlog_file", {}, int(suffix)))
        out.append(("binlog_position", {}, self.pos))
        if self.gtid_set:
            for source, sequence in latest_sequences(self.gtid_set, self.flavor).items():
                out.append(("gtid_sequence", {"gtid_source": source}, sequence))
        return out


_KINDS: dict[str, Any] = {"postgres": PgPosition, "mysql": MysqlPosition}


def position_from_dict(data: dict[str, Any]) -> Position:
    """Rebuild a position from its ``to_dict`` form (as stored in the offsets topic)."""
    try:
        kind = _KINDS[data["kind"]]
    except KeyError:
        raise ValueError(f"not a cdcd position: {data!r}") from None
    position: Position = kind.from_dict(data)
    return position


def later(one: Position, other: Position) -> bool:
    """Whether ``one`` is past ``other`` in the same stream: PostgreSQL by commit LSN and
    index; MySQL/MariaDB by GTID set (a strict superset, then the index), since file/pos
    differ between servers. False when they cannot be compared."""
    if isinstance(one, PgPosition) and isinstance(other, PgPosition):
        return (one.commit_lsn, one.index) > (other.commit_lsn, other.index)
    if isinstance(one, MysqlPosition) and isinstance(other, MysqlPosition):
        if not one.gtid_set or not other.gtid_set or one.flavor != other.flavor:
            return False
        from cdcd.sources.mysql.gtid import parse_gtid_position  # GTID sets are parsed there

        mine: Any = parse_gtid_position(one.gtid_set, one.flavor)  # type: ignore[arg-type]
        theirs: Any = parse_gtid_position(other.gtid_set, other.flavor)  # type: ignore[arg-type]
        if str(mine) == str(theirs):
            return one.index > other.index
        if hasattr(mine, "issuperset"):  # MySQL: a GTID set
            return bool(mine.issuperset(theirs))
        return bool(mine >= theirs)  # MariaDB: a position per domain
    return False
