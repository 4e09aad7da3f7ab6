"""Whether a MySQL/MariaDB server can stream on from a position exactly.

A position is refused, with what is gone and between which positions, when the server
never had it (GTIDs it never executed: a RESET MASTER since, or another server that
lacks them; a binlog file or offset it never wrote) or no longer has what comes after it
(binlogs purged). Streaming on from elsewhere would skip changes, so the daemon stops;
``cdcd offsets set``/``reset`` and ``source.initial_position`` are refused the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cdcd.errors import PositionLostError
from cdcd.positions import MysqlPosition
from cdcd.sources.mysql.checks import ServerInfo
from cdcd.sources.mysql.gtid import MariadbGtidPosition, MysqlGtidSet

_RESET_HINT = (
    "To stream on from the server's current position knowingly (the changes in between "
    "are not in Kafka; re-snapshot the tables to get their current rows): "
    "cdcd offsets reset --to latest"
)
_PURGED_HINT = (
    "Keep binlogs longer (binlog_expire_logs_seconds, expire_logs_days) than cdcd may be "
    "stopped; to stream on from the oldest binlog kept knowingly: cdcd offsets reset --to earliest"
)
_BINLOG_NAME = re.compile(r"^(.*)\.(\d+)$")


@dataclass(frozen=True, slots=True)
class _Binlogs:
    files: list[tuple[str, int]]  # (name, size), oldest first

    @property
    def first(self) -> str | None:
        return self.files[0][0] if self.files else None

    @property
    def last(self) -> str | None:
        return self.files[-1][0] if self.files else None

    def size(self, name: str) -> int | None:
        return next((size for file, size in self.files if file == name), None)

    def order(self, name: str) -> int:
        """-1: ``name`` would come before the oldest binlog kept (purged), 1: after the
        newest (never written here), 0: between or not comparable."""
        mine, first, last = _number(name), _number(self.first), _number(self.last)
        if mine is None or first is None or last is None or mine[0] != first[0]:
            return 0
        if mine[1] < first[1]:
            return -1
        return 1 if mine[1] > last[1] else 0


def _number(name: str | None) -> tuple[str, int] | None:
    match = _BINLOG_NAME.match(name or "")
    return (match.group(1), int(match.group(2))) if match else None


def _binlogs(cursor: Any) -> _Binlogs:
    cursor.execute("SHOW BINARY LOGS")
    return _Binlogs([(row[0], int(row[1])) for row in cursor.fetchall()])


def check_position(
    cursor: Any, info: ServerInfo, position: MysqlPosition, what: str, where: str
) -> None:
    """Raise ``PositionLostError`` unless the server at ``where`` can stream exactly from
    ``position`` (``what`` names it in the message: "the stored offset", "--position")."""
    binlogs = _binlogs(cursor)
    if position.gtid_set and info.gtid_enabled:
        if info.flavor == "mariadb":
            _check_mariadb_gtids(cursor, binlogs, position, what, where)
        else:
            _check_mysql_gtids(cursor, position, what, where)
        if position.file and position.server == info.identity:
            _check_reset(binlogs, position, what, where)
        return
    if position.file:
        _check_file_pos(binlogs, position, what, where)


def _check_mysql_gtids(cursor: Any, position: MysqlPosition, what: str, where: str) -> None:
    stored = str(MysqlGtidSet.parse(position.gtid_set or ""))
    cursor.execute(
        "SELECT GTID_SUBTRACT(%s, @@GLOBAL.gtid_executed), "
        "GTID_SUBTRACT(@@GLOBAL.gtid_purged, %s), @@GLOBAL.gtid_executed, @@GLOBAL.gtid_purged",
        (stored, stored),
    )
    never, purged, executed, gtid_purged = (_tidy(value) for value in cursor.fetchone())
    if never:
        raise PositionLostError(
            f"{what} ({stored}) holds transactions that MySQL at {where} never executed: "
            f"{never} (its gtid_executed is {executed or 'empty'}): its binary log was reset "
            "(RESET MASTER), or it is another server that lacks them, and what came after "
            f"{what} cannot be found. {_RESET_HINT}"
        )
    if purged:
        raise PositionLostError(
            f"MySQL at {where} purged transactions after {what} ({stored}) from its binlogs: "
            f"{purged} (gtid_purged {gtid_purged}); they cannot be streamed any more. "
            f"{_PURGED_HINT}"
        )


def _tidy(value: Any) -> str:
    text = value.decode() if isinstance(value, bytes) else str(value or "")
    return text.replace("\n", "").strip()


def _check_mariadb_gtids(
    cursor: Any, binlogs: _Binlogs, position: MysqlPosition, what: str, where: str
) -> None:
    stored = MariadbGtidPosition.parse(position.gtid_set or "")
    cursor.execute("SELECT @@GLOBAL.gtid_binlog_pos")
    current = MariadbGtidPosition.parse(_tidy(cursor.fetchone()[0]))
    for gtid in stored:
        have = current.get(gtid.domain)
        if have is None or have.seq < gtid.seq:
            raise PositionLostError(
                f"{what} ({stored}) is ahead of the binlog of MariaDB at {where} in domain "
                f"{gtid.domain}: it has read {gtid}, the server's binlog ends at "
                f"{have or 'nothing in that domain'} (gtid_binlog_pos {current or 'empty'}): "
                "its binary log was reset (RESET MASTER), or it is another server that lacks "
                f"them, and what came after {what} cannot be found. {_RESET_HINT}"
            )
    if binlogs.first is None:
        return
    cursor.execute("SELECT BINLOG_GTID_POS(%s, 4)", (binlogs.first,))
    before_first = MariadbGtidPosition.parse(_tidy(cursor.fetchone()[0]))
    for gtid in stored:
        oldest = before_first.get(gtid.domain)
        if oldest is not None and oldest.seq > gtid.seq:
            raise PositionLostError(
                f"MariaDB at {where} purged transactions after {what} ({stored}) from its "
                f"binlogs: in domain {gtid.domain}, those after {gtid} up to {oldest} (the "
                f"oldest binlog kept, {binlogs.first}, starts after {oldest}); they cannot be "
                f"streamed any more. {_PURGED_HINT}"
            )


def _check_reset(binlogs: _Binlogs, position: MysqlPosition, what: str, where: str) -> None:
    """A position read from this very server names a binlog file it no longer has and
    that would come after its newest one: the binlog was reset since (RESET MASTER)."""
    if binlogs.size(position.file) is None and binlogs.order(position.file) > 0:
        raise PositionLostError(
            f"{what} was read at {position.file}:{position.pos} of the server at {where} "
            f"(the same server, {position.server}), whose binlogs now end at {binlogs.last}: "
            f"its binary log was reset (RESET MASTER) since, and the transactions it wrote "
            f"after {what} are gone. {_RESET_HINT}"
        )


def _check_file_pos(binlogs: _Binlogs, position: MysqlPosition, what: str, where: str) -> None:
    at = f"{position.file}:{position.pos}"
    size = binlogs.size(position.file)
    if size is None:
        if binlogs.order(position.file) < 0:
            raise PositionLostError(
                f"{what} {at} is in a binlog the server at {where} has purged (the oldest "
                f"kept is {binlogs.first}): the transactions after it cannot be streamed any "
                f"more. {_PURGED_HINT}"
            )
        raise PositionLostError(
            f"{what} {at} names a binlog the server at {where} does not have (its binlogs: "
            f"{binlogs.first} to {binlogs.last}): it never had this position (RESET MASTER, "
            f"or another server). {_RESET_HINT}"
        )
    if position.pos > size:
        raise PositionLostError(
            f"{what} {at} is past the end of {position.file} on the server at {where} "
            f"({size} bytes): it never had this position. {_RESET_HINT}"
        )
