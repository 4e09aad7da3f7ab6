"""docker/: no Docker engine runs here, so what can be checked without one is: compose.yaml
and the Dockerfile agree with each other and with cdcd's configuration loader (the
configurations load, name the services, the listener Kafka advertises, the passwords the
init scripts set); and the databases' set-up really is enough for cdcd, on real servers
started with compose.yaml's own server options and the init scripts' SQL, from which the
docker configurations snapshot and stream into Kafka."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from support import ROOT, consume, daemon, unique_name

from cdcd.config import Config, load_config

yaml = pytest.importorskip("yaml")  # a test dependency (pyproject.toml [test])

DOCKER = ROOT / "docker"
CONFIG_IN_IMAGE = "/etc/cdcd/cdcd.toml"
CDCD_SERVICES = {"cdcd-postgres": "postgres", "cdcd-mariadb": "mariadb"}


def compose() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    return services


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of docker/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def mounted_config(service: dict[str, Any]) -> Path:
    """The host file a cdcd service mounts where the image reads its configuration."""
    for volume in service["volumes"]:
        source, target, *_ = volume.split(":")
        if target == CONFIG_IN_IMAGE:
            return (DOCKER / source).resolve()
    raise AssertionError(f"nothing mounted at {CONFIG_IN_IMAGE}: {service['volumes']}")


def docker_config(name: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    """A cdcd service's configuration, loaded as the container would (its environment)."""
    service = compose()[name]
    for key, value in service["environment"].items():
        monkeypatch.setenv(key, str(value))
    return load_config(mounted_config(service))


def init_password(sql: str, user: str) -> str:
    found = re.search(rf"{user}\S* (?:LOGIN REPLICATION PASSWORD|IDENTIFIED BY) '([^']+)'", sql)
    assert found, f"no password set for {user}"
    return found.group(1)


def test_the_image_runs_cdcd_as_a_user_on_the_mounted_configuration():
    instructions = dockerfile()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    user = [args for op, args in instructions if op == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert ("ENTRYPOINT", '["cdcd", "run"]') in instructions
    env = " ".join(args for op, args in instructions if op == "ENV")
    assert f"CDCD_CONFIG={CONFIG_IN_IMAGE}" in env  # what `cdcd run` reads without --config
    copied = [shlex.split(args)[:-1] for op, args in instructions if op == "COPY"]
    for source in sum(copied, []):
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    kept = {
        line[1:].rstrip("/")
        for line in (DOCKER / "Dockerfile.dockerignore").read_text().split()
        if line.startswith("!")
    }
    assert set(sum(copied, [])) <= kept, "a COPY source is left out of the build context"


@pytest.mark.parametrize("name", sorted(CDCD_SERVICES))
def test_each_cdcd_service_has_a_configuration_that_loads_and_names_the_services(
    name: str, monkeypatch: pytest.MonkeyPatch
):
    services = compose()
    service = services[name]
    assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
    config = docker_config(name, monkeypatch)  # loads: keys, values, the secret present
    database = CDCD_SERVICES[name]
    assert urlsplit(config.source.dsn).hostname == database
    assert service["depends_on"][database]["condition"] == "service_healthy"
    assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"//{config.sink.bootstrap_servers}" in advertised
    # The password cdcd is given is the one the init script sets for its user.
    user = urlsplit(config.source.dsn).username
    sql = (DOCKER / database / "01-cdc.sql").read_text()
    assert service["environment"]["CDCD_SOURCE_PASSWORD"] == init_password(sql, user)
    mount = next(v for v in services[database]["volumes"] if "docker-entrypoint-initdb.d" in v)
    assert mount.startswith(f"./{database}:")


def test_kafka_runs_in_kraft_mode_with_a_quorum_on_its_controller_listener():
    env = compose()["kafka"]["environment"]
    assert compose()["kafka"]["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"]  # id@host:port
    node, _, address = voter.partition("@")
    assert node == str(env["KAFKA_NODE_ID"])
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    assert listeners[env["KAFKA_CONTROLLER_LISTENER_NAMES"]] == f":{address.split(':')[1]}"
    # One broker: transactions (exactly-once) need their log with one replica.
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == 1
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == 1


def _streams(config: dict[str, Any], insert: Any, tmp_path: Path, kafka_bootstrap: str) -> None:
    """The configuration, renamed for this run, reads the two rows of the init script and
    an insert made while it streams."""
    name = unique_name("docker")  # a name no earlier run stored offsets for
    config = {**config, "name": name, "sink": {**config["sink"], "topic_prefix": name}}
    config["sink"]["bootstrap_servers"] = kafka_bootstrap
    config["log"] = {"level": "info", "format": "json"}
    with daemon(tmp_path, config) as d:
        insert()
        table = config["source"]["tables"][0]
        messages = consume(kafka_bootstrap, [f"{name}.{table}"], expect=3)
        assert d.terminate() == 0, d.log_text()[-3000:]
    assert sorted(m.value["after"]["id"] for m in messages) == [1, 2, 3]
    assert [m.value["op"] for m in messages] == ["r", "r", "c"]


def _as_dict(path: Path) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(path.read_text())


def test_the_postgres_set_up_is_enough_for_cdcd(monkeypatch, tmp_path, kafka_bootstrap):
    from throwaway_pg import postgres

    service = compose()["postgres"]
    command = service["command"]
    settings = [command[i + 1] for i, word in enumerate(command) if word == "-c"]
    config = _as_dict(mounted_config(compose()["cdcd-postgres"]))
    for key, value in compose()["cdcd-postgres"]["environment"].items():
        monkeypatch.setenv(key, value)
    with postgres(*(s.replace("=", " = ", 1) for s in settings)) as server:
        server.sql(f"CREATE DATABASE {service['environment']['POSTGRES_DB']}")
        dsn = f"postgresql://postgres:postgres@127.0.0.1:{server.port}/shop"
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute((DOCKER / "postgres" / "01-cdc.sql").read_text())
            parts = urlsplit(config["source"]["dsn"])
            config["source"]["dsn"] = (
                f"postgresql://{parts.username}@127.0.0.1:{server.port}{parts.path}"
            )
            config["source"]["publication_name"] = f"cdcd_{config['name']}"  # the script's
            _streams(
                config,
                lambda: conn.execute(
                    "INSERT INTO public.orders (id, customer, amount) VALUES (3, 'x', 1)"
                ),
                tmp_path,
                kafka_bootstrap,
            )


def test_the_mariadb_set_up_is_enough_for_cdcd(monkeypatch, tmp_path, kafka_bootstrap):
    from throwaway import mariadb

    service = compose()["mariadb"]
    config = _as_dict(mounted_config(compose()["cdcd-mariadb"]))
    for key, value in compose()["cdcd-mariadb"]["environment"].items():
        monkeypatch.setenv(key, value)
    # compose.yaml's own server options, on this machine's mariadbd.
    with mariadb(*service["command"]) as server:
        script = (DOCKER / "mariadb" / "01-cdc.sql").read_text()
        statements = [s for s in re.sub(r"--[^\n]*", "", script).split(";") if s.strip()]
        server.sql(f"CREATE DATABASE {service['environment']['MARIADB_DATABASE']}", *statements)
        parts = urlsplit(config["source"]["dsn"])
        config["source"]["dsn"] = f"mysql://{parts.username}@127.0.0.1:{server.port}/"
        insert = "INSERT INTO shop.orders (id, customer, amount) VALUES (3, 'x', 1)"
        _streams(config, lambda: server.sql(insert), tmp_path, kafka_bootstrap)
