"""How cdcd's Kafka clients are made and named: connection options (TLS, SASL) shared by
the producer, the admin client and consumers; the daemon's transactional id and group."""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Iterator
from typing import Any

from cdcd.errors import ConfigError
from cdcd.sinks.kafka import shims
from cdcd.sinks.kafka.config import KafkaSinkConfig


def client_options(sink: KafkaSinkConfig) -> dict[str, Any]:
    """Connection options shared by the producer, the admin client and consumers."""
    shims.install()  # every client made with them, the CLI's too (TLS connections' close)
    options: dict[str, Any] = {
        "bootstrap_servers": sink.bootstrap_servers,
        "security_protocol": sink.security_protocol,
    }
    if sink.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = _ssl_context(sink)
    if sink.sasl_mechanism:
        password = sink.sasl_password()
        options.update(
            sasl_mechanism=sink.sasl_mechanism,
            sasl_plain_username=sink.sasl_username,
            sasl_plain_password=password.get_secret_value() if password else None,
        )
    return options


def _ssl_context(sink: KafkaSinkConfig) -> ssl.SSLContext:
    # ssl.SSLError is an OSError: not a PEM file, a key that does not match the certificate.
    try:
        context = ssl.create_default_context(cafile=sink.ssl_cafile)
    except OSError as exc:
        raise ConfigError(
            f"sink.ssl_cafile: cannot use {sink.ssl_cafile}: {_reason(exc)}"
        ) from None
    if sink.ssl_certfile:
        try:
            context.load_cert_chain(sink.ssl_certfile, sink.ssl_keyfile)
        except OSError as exc:
            raise ConfigError(
                f"sink.ssl_certfile: cannot use {sink.ssl_certfile} (key: sink.ssl_keyfile "
                f"or the same file): {_reason(exc)}"
            ) from None
    return context


def _reason(exc: OSError) -> str:
    return exc.strerror or getattr(exc, "reason", None) or str(exc)


def default_replication(configured: int | None, brokers: int) -> int:
    """The replication factor of a topic cdcd creates: as configured, else 3 or fewer."""
    return configured or min(3, brokers or 1)


def transactional_id(name: str) -> str:
    """The ``transactional.id`` of daemon ``name``: one writer per name, zombies fenced."""
    return f"cdcd-{name}"


def group_id(name: str) -> str:
    """The consumer group a running daemon ``name`` is a member of."""
    return f"cdcd-{name}"


@contextlib.contextmanager
def quiet_library_logs() -> Iterator[None]:
    """aiokafka logs each failed attempt itself; cdcd's own error says it all."""
    library_log = logging.getLogger("aiokafka")
    level = library_log.level
    library_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        library_log.setLevel(level)
