"""Fixtures for MySQL/MariaDB integration tests: a fresh database, a daemon config."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pymysql
import pytest
from support import unique_name


@dataclass
class MyCase:
    flavor: str  # "mariadb" or "mysql"
    name: str  # daemon name, topic prefix and database
    url: str
    bootstrap: str
    conn: pymysql.connections.Connection
    tmp_path: Path

    @property
    def database(self) -> str:
        return self.name

    def config(self, tables: list[str], **source: Any) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": {
                "kind": "mysql",
                "dsn": self.url,
                "tables": [f"{self.database}.{t}" for t in tables],
                **source,
            },
            "sink": {
                "kind": "kafka",
                "bootstrap_servers": self.bootstrap,
                "topic_prefix": self.name,
            },
            "log": {"level": "debug", "format": "json"},
        }

    def topic(self, table: str) -> str:
        return f"{self.name}.{self.database}.{table}"

    def execute(self, *statements: str) -> None:
        """Run statements in one transaction."""
        with self.conn.cursor() as cursor:
            cursor.execute("BEGIN")
            for statement in statements:
                cursor.execute(statement)
            cursor.execute("COMMIT")

    def ddl(self, statement: str) -> None:
        with self.conn.cursor() as cursor:
            cursor.execute(statement)


def connect(url: str, **kwargs: Any) -> pymysql.connections.Connection:
    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname,
        port=parts.port,
        user=parts.username,
        password=parts.password or "",
        autocommit=True,
        **kwargs,
    )


@pytest.fixture(params=["mariadb", "mysql8"])
def my_case(request, kafka_bootstrap: str, tmp_path: Path) -> Iterator[MyCase]:
    if request.param == "mariadb":
        url = request.getfixturevalue("mysql_url")
    else:
        url = request.getfixturevalue("mysql8_url")
        if url is None:
            pytest.skip(
                "no MySQL 8 server in this test environment (scripts/testenv could not start one)"
            )
    name = unique_name()
    conn = connect(url)
    with conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
        cursor.execute(f"USE {name}")
        cursor.execute("SELECT VERSION()")
        flavor = "mariadb" if "mariadb" in cursor.fetchone()[0].lower() else "mysql"
    case = MyCase(flavor, name, url, kafka_bootstrap, conn, tmp_path)
    try:
        yield case
    finally:
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.close()
