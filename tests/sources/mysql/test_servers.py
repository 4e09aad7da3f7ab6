"""``source.dsn`` as a list of servers: how each is reached, which one a start reads, the
error when none can serve; and a dump displaced by another with the same server id."""

from __future__ import annotations

import pymysql
import pytest

from cdcd.config import parse_config
from cdcd.errors import (
    ConfigError,
    PositionLostError,
    SourceDisplacedError,
    SourceError,
    SourceUnavailableError,
)
from cdcd.sources.mysql.errors import stream_error
from cdcd.sources.mysql.servers import first_serving, servers

NAMES = ["a:3306", "b:3306", "c:3306"]


def source_config(dsn: object) -> object:
    config = {
        "name": "t",
        "source": {"kind": "mysql", "dsn": dsn},
        "sink": {"kind": "stdout", "topic_prefix": "t"},
    }
    return parse_config(config).source


def test_a_list_of_urls_is_a_dsn_and_a_single_url_still_is() -> None:
    assert source_config("mysql://u@a/").dsn == "mysql://u@a/"  # type: ignore[attr-defined]
    urls = ["mysql://u:p@a:3306/", "mysql://b:3307/"]
    assert source_config(urls).dsn == urls  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ([], "source.dsn: an empty list names no server: give at least one URL"),
        (["mysql://a/", "http://b/"], "source.dsn: entry 2 must be a URL like mysql://"),
        ("postgresql://a/", "source.dsn: must be a URL like mysql://"),
    ],
)
def test_a_bad_dsn_names_the_entry_to_fix(dsn: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        source_config(dsn)
    assert message in str(caught.value), caught.value


def test_urls_without_credentials_take_the_first_urls() -> None:
    found = servers(["mysql://cdc:pw@a:3306/", "mysql://b/", "mysql://me:mine@c:3307/"], None, None)
    assert [(s.where, s.connection["user"], s.connection["password"]) for s in found] == [
        ("a:3306", "cdc", "pw"),
        ("b:3306", "cdc", "pw"),
        ("c:3307", "me", "mine"),
    ]
    assert "ssl" not in found[0].connection


def test_password_env_and_tls_are_every_servers() -> None:
    tls = object()
    found = servers(["mysql://cdc:pw@a/", "mysql://me:mine@b/"], "secret", tls)
    assert [s.connection["password"] for s in found] == ["secret", "secret"]
    assert all(s.connection["ssl"] is tls for s in found)


def _serve(outcomes: dict[int, SourceError], names: list[str] = NAMES) -> tuple[int, list[int]]:
    tried: list[int] = []
    warned: list[int] = []

    def try_server(index: int) -> None:
        tried.append(index)
        if index in outcomes:
            raise outcomes[index]

    chosen = first_serving(names, try_server, lambda index, exc: warned.append(index))
    assert tried == list(range(chosen + 1))
    return chosen, warned


def test_the_first_server_that_serves_is_chosen_and_the_others_before_it_warned_of() -> None:
    assert _serve({}) == (0, [])
    down = SourceUnavailableError("cannot connect to MySQL/MariaDB at a:3306: refused")
    behind = PositionLostError("the stored offset is ahead of the binlog of b:3306")
    assert _serve({0: down, 1: behind}) == (2, [0, 1])


def test_one_server_fails_with_its_own_error() -> None:
    down = SourceUnavailableError("cannot connect")
    with pytest.raises(SourceUnavailableError) as caught:
        _serve({0: down}, ["a:3306"])
    assert caught.value is down


@pytest.mark.parametrize(
    ("errors", "kind"),
    [
        # Every server answered and none has the position: no pause will bring it back.
        ([PositionLostError("purged"), PositionLostError("ahead")] * 2, PositionLostError),
        # One may come back (or a replica catch up): the daemon starts over later.
        (
            [PositionLostError("ahead"), SourceUnavailableError("refused")] * 2,
            SourceUnavailableError,
        ),
        ([SourceError("binlog_format"), PositionLostError("purged")] * 2, SourceError),
    ],
)
def test_no_server_serving_is_one_error_naming_each(errors: list[SourceError], kind: type) -> None:
    with pytest.raises(SourceError) as caught:
        _serve(dict(enumerate(errors[:3])))
    assert type(caught.value) is kind
    text = str(caught.value)
    assert text.startswith("no server of source.dsn can stream: (1) a:3306: ")
    assert "(2) b:3306: " in text and "(3) c:3306: " in text, text


@pytest.mark.parametrize(
    ("code", "message"),
    [  # as MariaDB 10.11 and MySQL 8.0.15 of the test environment end the older dump
        (
            4052,
            "A slave with the same server_uuid/server_id is already connected; the first event "
            "'.' at 4, the last event read from 'mariadb-bin.000001' at 1671513, the last byte "
            "read from 'mariadb-bin.000001' at 1671544.",
        ),
        (
            1236,
            "A slave with the same server_uuid/server_id as this slave has connected to the "
            "master; the first event '' at 4, the last event read from './binlog.000002' at "
            "155, the last byte read from './binlog.000002' at 155.",
        ),
    ],
)
def test_a_dump_displaced_by_the_same_server_id_is_said_so(code: int, message: str) -> None:
    error = stream_error(pymysql.err.OperationalError(code, message), "db:3306")
    assert type(error) is SourceDisplacedError
    assert str(error).startswith(
        "another binlog reader with this server id connected to db:3306 and the server ended "
        "this one's dump (A slave with the same server_uuid/server_id "
    )
    assert str(error).endswith("give each its own source.server_id"), error


def test_a_purged_binlog_is_still_not_a_displacement() -> None:
    error = stream_error(
        pymysql.err.OperationalError(1236, "Could not find first log file name in binary log"),
        "db:3306",
    )
    assert type(error) is SourceError and "purged" in str(error)
