"""The servers of ``source.dsn``, and which one a start streams from.

``source.dsn`` is one URL or a list of them (a primary and its replicas). Each start of
the source (the first, and each start over after a lost connection) tries them in the
order listed and streams from the first that answers, passes the fatal checks and can
serve the stored position exactly. GTIDs are the same on every server of a replication
topology, binlog files and offsets are not: on a server other than the one a position
was read from it is resumed by its GTID set (``history.check_position`` checks the
file/pos only on the server that wrote it). A server that cannot serve it is skipped
with a warning; when none can, the error names each server and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cdcd.errors import PositionLostError, SourceError, SourceUnavailableError
from cdcd.selection import dsn_parts


@dataclass(frozen=True, slots=True)
class Server:
    """One server of ``source.dsn``: how to connect (pymysql's keywords), and its name in
    messages (``host:port``)."""

    connection: dict[str, Any]
    where: str


def server_urls(dsn: str | list[str]) -> list[str]:
    """``source.dsn`` as a list, in the order the servers are tried."""
    return [dsn] if isinstance(dsn, str) else list(dsn)


def servers(dsn: str | list[str], password: str | None, tls: Any) -> list[Server]:
    """The servers of ``source.dsn``. A URL without a user or password takes the first
    URL's; ``password`` (``source.password_env``/``_file``) is every server's when set;
    the ``source.ssl_*`` settings (``tls``) are every server's."""
    urls = [dsn_parts(url) for url in server_urls(dsn)]
    first = urls[0]
    out = []
    for parts in urls:
        connection = {
            "host": parts["host"],
            "port": parts["port"] or 3306,
            "user": parts["user"] or first["user"] or "root",
            "password": password
            if password is not None
            else (parts["password"] or first["password"] or ""),
        }
        if tls is not None:
            connection["ssl"] = tls
        out.append(Server(connection, f"{connection['host']}:{connection['port']}"))
    return out


def first_serving(
    names: list[str], try_server: Callable[[int], None], warn: Callable[[int, SourceError], None]
) -> int:
    """The index of the first server (of those ``names`` name) on which ``try_server(index)``
    raises no ``SourceError``; ``warn`` hears of each one skipped. One server: its error as
    it is.
    None serving: one error naming each server and why, a ``SourceUnavailableError`` (the
    daemon starts over later) when any of them may come back, a ``PositionLostError``
    when every one answered and none has the position."""
    failures: list[SourceError] = []
    count = len(names)
    for index in range(count):
        try:
            try_server(index)
            return index
        except SourceError as exc:
            if count == 1:
                raise
            failures.append(exc)
            if index + 1 < count:
                warn(index, exc)
    text = "no server of source.dsn can stream: " + "; ".join(
        f"({number}) {name}: {exc}"
        for number, (name, exc) in enumerate(zip(names, failures, strict=True), 1)
    )
    if any(isinstance(exc, SourceUnavailableError) for exc in failures):
        raise SourceUnavailableError(text)
    if all(isinstance(exc, PositionLostError) for exc in failures):
        raise PositionLostError(text)
    raise SourceError(text)
