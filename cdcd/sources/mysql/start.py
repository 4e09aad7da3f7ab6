"""Where a binlog stream starts: after a stored position, at ``source.initial_position``
(``earliest``, ``latest``, a GTID set or position, a binlog file/pos), or where
``cdcd offsets reset`` puts it; each resolved on the server and checked before use."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pymysql

from cdcd.errors import SourceError
from cdcd.positions import MysqlPosition, Position
from cdcd.sources.mysql.checks import ServerInfo
from cdcd.sources.mysql.gtid import MariadbGtidPosition, MysqlGtidSet

if TYPE_CHECKING:
    from cdcd.sources.mysql.config import MysqlSourceConfig

_FILE_POS = re.compile(r"^[^:\s]+\.\d+:\d+$")


@dataclass(slots=True)
class Start:
    gtid_set: str | None  # resume after these transactions (auto_position), or None
    file: str | None
    pos: int | None
    skip_events: int = 0  # events of the first transaction already written


class StartPoints:
    """Resolves start points on one server. ``connect`` opens a connection (saying what
    to fix when it cannot); ``check_position(position, what)`` refuses a position the
    server cannot stream from exactly; ``where`` names the server in messages."""

    def __init__(
        self,
        info: ServerInfo,
        config: MysqlSourceConfig,
        *,
        connect: Callable[[], pymysql.connections.Connection],
        check_position: Callable[[Position, str], None],
        where: str,
    ) -> None:
        self.info = info
        self.config = config
        self.connect = connect
        self.check_position = check_position
        self.where = where

    def start_point(self, resume: Position | None) -> Start:
        """After ``resume``, else at ``source.initial_position``."""
        info = self.info
        if resume is not None:
            if not isinstance(resume, MysqlPosition):
                raise SourceError(f"cannot resume a MySQL stream from a {resume.kind} position")
            if resume.flavor != info.flavor:  # checked in prepare() as well
                raise SourceError(
                    f"the stored position is a {resume.flavor} position but the server is "
                    f"{info.flavor}: reset the offsets (cdcd offsets reset)"
                )
            if resume.gtid_set and info.gtid_enabled:
                return Start(resume.gtid_set, None, None, resume.index)
            if resume.gtid_set is not None and resume.file:
                # An empty GTID set: from the beginning of the binlog, by file/pos.
                return Start(resume.gtid_set, resume.file, resume.pos, resume.index)
            return self.by_file_pos(resume.file, resume.pos, resume.index)
        initial = self.config.initial_position.strip()
        if initial in ("latest", "earliest"):
            return self.resolve(initial)
        if _FILE_POS.match(initial):  # mariadb-bin.000001:4 (GTIDs have no ".")
            file, pos = initial.rsplit(":", 1)
            return self.by_file_pos(file, int(pos), what="source.initial_position")
        gtids = self._parse_gtid(initial)
        position = MysqlPosition(info.flavor, gtids, "", 4)
        self.check_position(position, "source.initial_position")
        return Start(gtids, None, None)

    def by_file_pos(
        self, file: str, pos: int, skip_events: int = 0, what: str | None = None
    ) -> Start:
        """Start at a binlog file/pos. ``what`` names a position not checked yet (refused
        before it is stored when the server does not have it); a stored offset was checked
        by ``prepare``. python-mysql-replication cannot ask MariaDB for a file/pos (it
        always dumps from the oldest binlog), so there the position is turned into the
        GTID position that starts at the same place."""
        if self.info.flavor != "mariadb":
            if what is not None:
                self.check_position(MysqlPosition("mysql", None, file, pos), what)
            return Start(None, file, pos, skip_events)
        conn = self.connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
                gtid_position = cursor.fetchone()[0]  # NULL: no event starts there
        finally:
            conn.close()
        if gtid_position is None:
            raise SourceError(
                f"{file}:{pos} is not a position in the binlogs of {self.where} (purged, or "
                "never one): fix source.initial_position, or reset the offsets "
                "(cdcd offsets reset)"
            )
        return Start(str(MariadbGtidPosition.parse(gtid_position)), file, pos, skip_events)

    def resolve(self, where: str) -> Start:
        """``latest`` (after everything committed so far) or ``earliest`` (the oldest
        binlog kept)."""
        conn = self.connect()
        try:
            with conn.cursor() as cursor:
                if where == "latest":
                    return self._latest(cursor)
                return self._earliest(cursor)
        finally:
            conn.close()

    def position(self, start: Start) -> MysqlPosition:
        """The position that streams from ``start`` (to store, or to show)."""
        return MysqlPosition(
            self.info.flavor,
            start.gtid_set,
            start.file or "",
            start.pos or 0,
            start.skip_events,
            self.info.identity,
        )

    def _earliest(self, cursor: Any) -> Start:
        cursor.execute("SHOW BINARY LOGS")
        first = cursor.fetchone()
        if first is None:
            raise SourceError(f"{self.where} has no binary log: is log_bin on?")
        # From the first file kept, the GTID set grows from empty as transactions come.
        return Start("" if self.info.gtid_enabled else None, first[0], 4)

    def _latest(self, cursor: Any) -> Start:
        try:
            cursor.execute("SHOW MASTER STATUS")
        except pymysql.err.ProgrammingError:
            cursor.execute("SHOW BINARY LOG STATUS")  # MySQL 8.4 renamed it
        row = cursor.fetchone()
        if row is None:
            raise SourceError(f"{self.where} has no binary log position: is log_bin on?")
        file, pos = row[0], int(row[1])
        if not self.info.gtid_enabled:
            return Start(None, file, pos)
        if self.info.flavor == "mariadb":
            cursor.execute("SELECT @@GLOBAL.gtid_binlog_pos")
            return Start(str(MariadbGtidPosition.parse(cursor.fetchone()[0] or "")), file, pos)
        return Start(str(MysqlGtidSet.parse(row[4] or "")), file, pos)

    def _parse_gtid(self, text: str) -> str:
        try:
            if self.info.flavor == "mariadb":
                return str(MariadbGtidPosition.parse(text))
            return str(MysqlGtidSet.parse(text))
        except ValueError as exc:
            raise SourceError(f"source.initial_position: {exc}") from None
