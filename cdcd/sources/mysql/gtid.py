"""GTID positions of both binlog flavours, as immutable values.

MySQL identifies a transaction by ``source_uuid[:tag]:number`` and a position by the *set*
of transactions applied (``gtid_executed``): ``uuid:1-100:200-300,uuid2:1-5``. Since 8.3 a
GTID may carry a tag (``uuid:tag:7``); a set then lists, per uuid, the untagged intervals
first and each tag's intervals after it (``uuid:1-3:alpha:1-2``).

MariaDB identifies a transaction by ``domain-server-sequence`` and a position by the last
GTID per replication domain (``gtid_binlog_pos``): ``0-1-100,1-2-5``. Inside a domain the
sequence only grows (``gtid_strict_mode``), so one entry per domain is a whole position.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

__all__ = [
    "MariadbGtid",
    "MariadbGtidPosition",
    "MysqlGtid",
    "MysqlGtidSet",
    "latest_sequences",
    "parse_gtid_position",
]

_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# MySQL 8.3+ (WL#15294): at most 32 letters, digits or underscores, not starting with a
# digit; case-insensitive, so kept lowercase as the server prints them.
_TAG_RE = re.compile(r"[a-z_][a-z0-9_]{0,31}")
_INTERVAL_RE = re.compile(r"([0-9]+)(?:-([0-9]+))?")
_MARIADB_GTID_RE = re.compile(r"([0-9]+)-([0-9]+)-([0-9]+)")
_MAX_GNO = 2**63 - 1  # MySQL's GNO_END - 1: transaction numbers are positive signed 64-bit

_MYSQL_SET_FORM = "uuid:1-100:200,uuid2[:tag]:1-5"
_MYSQL_GTID_FORM = "uuid:42 or uuid:tag:42"
_MARIADB_FORM = "domain-server-sequence, e.g. 0-1-100,1-2-5"

Interval = tuple[int, int]  # closed: (first, last), first <= last
_Key = tuple[str, str]  # (uuid, tag); tag "" when untagged


class MysqlGtid(NamedTuple):
    """One MySQL transaction id: ``uuid[:tag]:gno``."""

    uuid: str
    gno: int
    tag: str = ""

    @classmethod
    def parse(cls, text: str) -> MysqlGtid:
        parts = text.strip().split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"not a MySQL GTID: {text!r} (expected {_MYSQL_GTID_FORM})")
        uuid = _parse_uuid(parts[0], text, "MySQL GTID")
        tag = _parse_tag(parts[1], text, "MySQL GTID") if len(parts) == 3 else ""
        number = parts[-1].strip()
        if not re.fullmatch(r"[0-9]+", number):
            raise ValueError(f"not a MySQL GTID: {text!r} (expected {_MYSQL_GTID_FORM})")
        return cls(uuid, _check_gno(int(number), text, "MySQL GTID"), tag)

    def __str__(self) -> str:
        if self.tag:
            return f"{self.uuid}:{self.tag}:{self.gno}"
        return f"{self.uuid}:{self.gno}"


@dataclass(frozen=True, slots=True)
class MysqlGtidSet:
    """An immutable MySQL GTID set, always in canonical form.

    Canonical means what the server prints for ``gtid_executed``: uuids (and tags)
    lowercase and sorted, intervals sorted and merged (``1-5:6-9`` is ``1-9``), entries
    joined by ``,`` (the server's ``,\\n`` is accepted on input).
    """

    # Sorted by key; every interval tuple sorted, disjoint and non-adjacent.
    entries: tuple[tuple[_Key, tuple[Interval, ...]], ...] = ()

    @classmethod
    def empty(cls) -> MysqlGtidSet:
        return _EMPTY_MYSQL

    @classmethod
    def parse(cls, text: str) -> MysqlGtidSet:
        """Parse MySQL's text form: ``uuid:1-100:200,uuid2:tag:1-5`` (whitespace tolerated)."""
        if not isinstance(text, str):
            raise TypeError(f"a GTID set is text, not {type(text).__name__}")
        stripped = text.strip()
        if not stripped:
            return _EMPTY_MYSQL
        collected: dict[_Key, list[Interval]] = {}
        for piece in stripped.split(","):
            tokens = [token.strip() for token in piece.strip().split(":")]
            if len(tokens) < 2:
                raise ValueError(
                    f"not a MySQL GTID set: {text!r}: {piece.strip()!r} has no transaction "
                    f"numbers (expected {_MYSQL_SET_FORM})"
                )
            uuid = _parse_uuid(tokens[0], text)
            tag = ""
            seen_interval_for_tag = False
            for token in tokens[1:]:
                match = _INTERVAL_RE.fullmatch(token)
                if match:
                    first = _check_gno(int(match.group(1)), text)
                    last = _check_gno(int(match.group(2) or match.group(1)), text)
                    if last < first:
                        raise ValueError(
                            f"not a MySQL GTID set: {text!r}: interval {token!r} ends before "
                            f"it starts (expected first-last with first <= last)"
                        )
                    collected.setdefault((uuid, tag), []).append((first, last))
                    seen_interval_for_tag = True
                    continue
                if tag and not seen_interval_for_tag:
                    raise ValueError(
                        f"not a MySQL GTID set: {text!r}: tag {tag!r} has no transaction "
                        f"numbers (expected {_MYSQL_SET_FORM})"
                    )
                tag = _parse_tag(token, text)
                seen_interval_for_tag = False
            if tag and not seen_interval_for_tag:
                raise ValueError(
                    f"not a MySQL GTID set: {text!r}: tag {tag!r} has no transaction numbers "
                    f"(expected {_MYSQL_SET_FORM})"
                )
        return cls._from_mapping(
            {key: _normalize(intervals) for key, intervals in collected.items()}
        )

    @classmethod
    def _from_mapping(cls, mapping: Mapping[_Key, tuple[Interval, ...]]) -> MysqlGtidSet:
        entries = tuple(sorted((key, iv) for key, iv in mapping.items() if iv))
        return cls(entries) if entries else _EMPTY_MYSQL

    def _as_dict(self) -> dict[_Key, tuple[Interval, ...]]:
        return dict(self.entries)

    def __str__(self) -> str:
        chunks: list[str] = []
        current_uuid = None
        for (uuid, tag), intervals in self.entries:
            text = ":".join(f"{a}" if a == b else f"{a}-{b}" for a, b in intervals)
            if tag:
                text = f"{tag}:{text}"
            if uuid == current_uuid:
                chunks[-1] += f":{text}"
            else:
                chunks.append(f"{uuid}:{text}")
                current_uuid = uuid
        return ",".join(chunks)

    def __repr__(self) -> str:
        return f"MysqlGtidSet.parse({str(self)!r})"

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __len__(self) -> int:
        """Number of transactions in the set."""
        return sum(b - a + 1 for _, intervals in self.entries for a, b in intervals)

    def __iter__(self) -> Iterator[MysqlGtid]:
        """Every transaction, in canonical order (meant for small sets and tests)."""
        for (uuid, tag), intervals in self.entries:
            for a, b in intervals:
                for gno in range(a, b + 1):
                    yield MysqlGtid(uuid, gno, tag)

    def __contains__(self, gtid: object) -> bool:
        """Whether a single transaction (``"uuid:n"``, ``"uuid:tag:n"`` or MysqlGtid) is in it."""
        if isinstance(gtid, str):
            gtid = MysqlGtid.parse(gtid)
        if not isinstance(gtid, MysqlGtid):
            return False
        intervals = self._as_dict().get((gtid.uuid, gtid.tag), ())
        index = bisect.bisect_right(intervals, (gtid.gno, _MAX_GNO + 1)) - 1
        return index >= 0 and intervals[index][0] <= gtid.gno <= intervals[index][1]

    def add(self, uuid: str, gno: int, tag: str = "") -> MysqlGtidSet:
        """This set plus one transaction (as when a GTID event of the stream is committed)."""
        gtid_text = f"{uuid}:{tag}:{gno}" if tag else f"{uuid}:{gno}"
        key = (
            _parse_uuid(uuid, gtid_text, "MySQL GTID"),
            _parse_tag(tag, gtid_text, "MySQL GTID") if tag else "",
        )
        gno = _check_gno(gno, gtid_text, "MySQL GTID")
        mapping = self._as_dict()
        mapping[key] = _insert(mapping.get(key, ()), gno)
        return self._from_mapping(mapping)

    def add_gtid(self, gtid: MysqlGtid | str) -> MysqlGtidSet:
        if isinstance(gtid, str):
            gtid = MysqlGtid.parse(gtid)
        return self.add(gtid.uuid, gtid.gno, gtid.tag)

    def union(self, other: MysqlGtidSet) -> MysqlGtidSet:
        mapping = self._as_dict()
        for key, intervals in other.entries:
            mapping[key] = _normalize([*mapping.get(key, ()), *intervals])
        return self._from_mapping(mapping)

    def difference(self, other: MysqlGtidSet) -> MysqlGtidSet:
        theirs = other._as_dict()
        return self._from_mapping(
            {key: _subtract(mine, theirs.get(key, ())) for key, mine in self.entries}
        )

    def intersection(self, other: MysqlGtidSet) -> MysqlGtidSet:
        return self.difference(self.difference(other))

    def issubset(self, other: MysqlGtidSet) -> bool:
        return not self.difference(other)

    def issuperset(self, other: MysqlGtidSet) -> bool:
        return other.issubset(self)

    __or__ = union
    __sub__ = difference
    __and__ = intersection
    __le__ = issubset
    __ge__ = issuperset

    def uuids(self) -> tuple[str, ...]:
        return tuple(sorted({uuid for (uuid, _), _ in self.entries}))


_EMPTY_MYSQL = MysqlGtidSet()


class MariadbGtid(NamedTuple):
    """One MariaDB transaction id: ``domain-server-sequence``."""

    domain: int
    server: int
    seq: int

    @classmethod
    def parse(cls, text: str) -> MariadbGtid:
        match = _MARIADB_GTID_RE.fullmatch(text.strip())
        if not match:
            raise ValueError(f"not a MariaDB GTID: {text!r} (expected {_MARIADB_FORM})")
        return cls.of(*(int(group) for group in match.groups()))

    @classmethod
    def of(cls, domain: int, server: int, seq: int) -> MariadbGtid:
        """A GTID from its numbers, checked against the server's ranges."""
        if not (0 <= domain <= 0xFFFFFFFF and 0 <= server <= 0xFFFFFFFF):
            raise ValueError(
                f"not a MariaDB GTID: {domain}-{server}-{seq} (domain and server id are "
                f"32-bit unsigned numbers)"
            )
        if not 0 <= seq <= 0xFFFFFFFFFFFFFFFF:
            raise ValueError(
                f"not a MariaDB GTID: {domain}-{server}-{seq} (the sequence number is a "
                f"64-bit unsigned number)"
            )
        return cls(domain, server, seq)

    def __str__(self) -> str:
        return f"{self.domain}-{self.server}-{self.seq}"


@dataclass(frozen=True, slots=True)
class MariadbGtidPosition:
    """An immutable MariaDB GTID position: the last GTID of each replication domain.

    Printed sorted by domain, the form ``SET GLOBAL gtid_slave_pos`` and
    ``@slave_connect_state`` accept.
    """

    gtids: tuple[MariadbGtid, ...] = ()  # sorted by domain, one per domain

    @classmethod
    def empty(cls) -> MariadbGtidPosition:
        return _EMPTY_MARIADB

    @classmethod
    def parse(cls, text: str) -> MariadbGtidPosition:
        """Parse ``0-1-100,1-2-5``; a domain may appear only once."""
        if not isinstance(text, str):
            raise TypeError(f"a GTID position is text, not {type(text).__name__}")
        if not text.strip():
            return _EMPTY_MARIADB
        by_domain: dict[int, MariadbGtid] = {}
        for piece in text.split(","):
            try:
                gtid = MariadbGtid.parse(piece)
            except ValueError as exc:
                raise ValueError(f"not a MariaDB GTID position: {text!r}: {exc}") from None
            if gtid.domain in by_domain:
                raise ValueError(
                    f"not a MariaDB GTID position: {text!r}: domain {gtid.domain} appears "
                    f"twice (expected at most one domain-server-sequence per domain)"
                )
            by_domain[gtid.domain] = gtid
        return cls._from(by_domain.values())

    @classmethod
    def _from(cls, gtids: Iterable[MariadbGtid]) -> MariadbGtidPosition:
        ordered = tuple(sorted(gtids))
        return cls(ordered) if ordered else _EMPTY_MARIADB

    def __str__(self) -> str:
        return ",".join(str(gtid) for gtid in self.gtids)

    def __repr__(self) -> str:
        return f"MariadbGtidPosition.parse({str(self)!r})"

    def __bool__(self) -> bool:
        return bool(self.gtids)

    def __len__(self) -> int:
        return len(self.gtids)

    def __iter__(self) -> Iterator[MariadbGtid]:
        return iter(self.gtids)

    def get(self, domain: int) -> MariadbGtid | None:
        """The last GTID of ``domain``, or None if the position knows nothing of it."""
        for gtid in self.gtids:
            if gtid.domain == domain:
                return gtid
        return None

    def domains(self) -> tuple[int, ...]:
        return tuple(gtid.domain for gtid in self.gtids)

    def advance(self, domain: int, server: int, seq: int) -> MariadbGtidPosition:
        """This position after transaction ``domain-server-seq``: replaces the domain's entry."""
        new = MariadbGtid.of(domain, server, seq)
        return self._from([*(g for g in self.gtids if g.domain != domain), new])

    def advance_gtid(self, gtid: MariadbGtid | str) -> MariadbGtidPosition:
        if isinstance(gtid, str):
            gtid = MariadbGtid.parse(gtid)
        return self.advance(gtid.domain, gtid.server, gtid.seq)

    def __contains__(self, gtid: object) -> bool:
        """Whether a transaction is already applied: same domain, sequence <= this one's.

        The server id plays no part: within a domain, strict mode orders sequences.
        """
        if isinstance(gtid, str):
            gtid = MariadbGtid.parse(gtid)
        if not isinstance(gtid, MariadbGtid):
            return False
        mine = self.get(gtid.domain)
        return mine is not None and gtid.seq <= mine.seq

    def covers(self, other: MariadbGtidPosition) -> bool:
        """Whether every transaction up to ``other`` is also up to this position."""
        return all(gtid in self for gtid in other.gtids)

    def merge(self, other: MariadbGtidPosition) -> MariadbGtidPosition:
        """Per domain, the later of the two entries."""
        by_domain = {gtid.domain: gtid for gtid in self.gtids}
        for gtid in other.gtids:
            mine = by_domain.get(gtid.domain)
            if mine is None or gtid.seq > mine.seq:
                by_domain[gtid.domain] = gtid
        return self._from(by_domain.values())

    def __le__(self, other: MariadbGtidPosition) -> bool:
        return other.covers(self)

    def __ge__(self, other: MariadbGtidPosition) -> bool:
        return self.covers(other)


_EMPTY_MARIADB = MariadbGtidPosition()


def parse_gtid_position(
    text: str, flavor: Literal["mysql", "mariadb"]
) -> MysqlGtidSet | MariadbGtidPosition:
    """Parse a GTID position written the way the server of ``flavor`` writes it."""
    if flavor == "mysql":
        return MysqlGtidSet.parse(text)
    if flavor == "mariadb":
        return MariadbGtidPosition.parse(text)
    raise ValueError(f"unknown binlog flavor {flavor!r} (expected 'mysql' or 'mariadb')")


def latest_sequences(text: str, flavor: str) -> dict[str, int]:
    """The last transaction number of each GTID source of a position: MySQL's highest
    number of each ``uuid[:tag]`` in the set, MariaDB's sequence of each domain."""
    position = parse_gtid_position(text, flavor)  # type: ignore[arg-type]
    if isinstance(position, MysqlGtidSet):
        return {
            f"{uuid}:{tag}" if tag else uuid: intervals[-1][1]
            for (uuid, tag), intervals in position.entries
        }
    return {str(gtid.domain): gtid.seq for gtid in position}


def _parse_uuid(token: str, context: str, what: str = "MySQL GTID set") -> str:
    uuid = token.strip().lower()
    if not _UUID_RE.fullmatch(uuid):
        raise ValueError(
            f"not a {what}: {context!r}: {token.strip()!r} is not a server uuid "
            f"(expected 8-4-4-4-12 hex digits, as in {_MYSQL_SET_FORM})"
        )
    return uuid


def _parse_tag(token: str, context: str, what: str = "MySQL GTID set") -> str:
    tag = token.strip().lower()
    if not _TAG_RE.fullmatch(tag):
        raise ValueError(
            f"not a {what}: {context!r}: {token.strip()!r} is neither an interval "
            f"(first-last) nor a tag (1-32 letters, digits or _, not starting with a digit)"
        )
    return tag


def _check_gno(gno: int, context: str, what: str = "MySQL GTID set") -> int:
    if not 1 <= gno <= _MAX_GNO:
        raise ValueError(
            f"not a {what}: {context!r}: transaction number {gno} is out of range "
            f"(expected 1 to 2^63-1)"
        )
    return gno


def _normalize(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    merged: list[Interval] = []
    for first, last in sorted(intervals):
        if merged and first <= merged[-1][1] + 1:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return tuple(merged)


def _insert(intervals: tuple[Interval, ...], gno: int) -> tuple[Interval, ...]:
    # The common case, the next number of the newest interval, costs no sort.
    if intervals and intervals[-1][0] <= gno <= intervals[-1][1] + 1:
        last = intervals[-1]
        return (*intervals[:-1], (last[0], max(last[1], gno)))
    return _normalize([*intervals, (gno, gno)])


def _subtract(mine: tuple[Interval, ...], theirs: tuple[Interval, ...]) -> tuple[Interval, ...]:
    result: list[Interval] = []
    for first, last in mine:
        start = first
        for cut_first, cut_last in theirs:
            if cut_last < start or cut_first > last:
                continue
            if cut_first > start:
                result.append((start, cut_first - 1))
            start = max(start, cut_last + 1)
            if start > last:
                break
        if start <= last:
            result.append((start, last))
    return tuple(result)
