"""Why Kafka cannot be reached, in words a user can act on.

aiokafka's clients only say that no bootstrap server answered; the reason (a refused
connection, a refused SASL login, a certificate not trusted) is logged and dropped. Here
one connection is made to each bootstrap server with the ``[sink]`` settings, as the
clients make it, and then to each broker the cluster advertises (the clients are sent
there: an address that is wrong outside the brokers' own network fails only then).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import KafkaError, SaslAuthenticationFailed, UnsupportedSaslMechanismError
from aiokafka.protocol.metadata import MetadataRequest

from cdcd.errors import SinkError
from cdcd.sinks.base import SinkUnavailableError
from cdcd.sinks.kafka.config import KafkaSinkConfig
from cdcd.sources.base import Problem

CONNECT_TIMEOUT_S = 10.0
_NAME_MISMATCH = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


async def connection_problem(sink: KafkaSinkConfig, options: dict[str, Any]) -> Problem | None:
    """None if a bootstrap server and every broker it advertises take a connection (TLS,
    SASL and all); else what fails, with the fix."""
    diagnosis = await _diagnose(sink, options)
    return diagnosis[0] if diagnosis is not None else None


async def unreachable(sink: KafkaSinkConfig, options: dict[str, Any]) -> SinkError | None:
    """The error a failed start raises, when a connection tells why: ``SinkError`` for
    what needs a fix (a login, a certificate), ``SinkUnavailableError`` for what may pass."""
    diagnosis = await _diagnose(sink, options)
    if diagnosis is None:
        return None
    problem, may_pass = diagnosis
    kind = SinkUnavailableError if may_pass else SinkError
    return kind(f"{problem.what}; {problem.fix}")


async def _diagnose(sink: KafkaSinkConfig, options: dict[str, Any]) -> tuple[Problem, bool] | None:
    """(what fails, whether it may pass by itself), or None."""
    failure: tuple[str, BaseException] | None = None
    for host, port, _family in collect_hosts(sink.bootstrap_servers, randomize=False):
        try:
            conn = await _connect(host, port, options)
        except (OSError, KafkaError, TimeoutError) as exc:
            failure = failure or (f"{host}:{port}", exc)
            continue
        try:
            metadata = await asyncio.wait_for(conn.send(MetadataRequest([])), CONNECT_TIMEOUT_S)
        except (KafkaError, TimeoutError) as exc:
            failure = failure or (f"{host}:{port}", exc)
            continue
        finally:
            conn.close()
        return await _advertised_problem(sink, options, metadata.brokers)
    assert failure is not None
    return _explain(sink, *failure), _may_pass(failure[1])


async def _connect(host: str, port: int, options: dict[str, Any]) -> Any:
    settings = {k: v for k, v in options.items() if k != "bootstrap_servers"}
    timeout_ms = int(CONNECT_TIMEOUT_S * 1000)
    return await asyncio.wait_for(
        create_conn(host, port, request_timeout_ms=timeout_ms, **settings), CONNECT_TIMEOUT_S
    )


async def _advertised_problem(
    sink: KafkaSinkConfig, options: dict[str, Any], brokers: list[Any]
) -> tuple[Problem, bool] | None:
    for node_id, host, port, *_rack in brokers:
        try:
            (await _connect(host, port, options)).close()
        except (OSError, KafkaError, TimeoutError) as exc:
            reason = _explain(sink, f"{host}:{port}", exc)
            problem = Problem(
                f"Kafka's broker {node_id} gives clients the address {host}:{port}, which "
                f"cdcd cannot reach ({reason.what})",
                "set that broker's advertised.listeners to an address this host reaches",
            )
            return problem, _may_pass(exc)
    return None


def _may_pass(exc: BaseException) -> bool:
    """False for what no waiting mends (a refused login, a TLS failure): a daemon stops."""
    return not isinstance(
        exc, SaslAuthenticationFailed | UnsupportedSaslMechanismError | ssl.SSLError
    )


def _explain(sink: KafkaSinkConfig, where: str, exc: BaseException) -> Problem:
    if isinstance(exc, SaslAuthenticationFailed | UnsupportedSaslMechanismError):
        return Problem(
            f"Kafka at {where} refused the SASL login of {sink.sasl_username!r}: {exc}",
            "check sink.sasl_username, the password (sink.sasl_password_env or "
            "sink.sasl_password_file) and sink.sasl_mechanism",
        )
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_code in _NAME_MISMATCH:
        return Problem(
            f"the TLS certificate of Kafka at {where} does not name the host cdcd connects "
            f"to: {exc.verify_message.rstrip('.')}",
            "set sink.bootstrap_servers to a name (or address) the brokers' certificates hold",
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        trusted = (
            f"the CA in sink.ssl_cafile ({sink.ssl_cafile})"
            if sink.ssl_cafile
            else ("a CA this system trusts (sink.ssl_cafile is not set)")
        )
        return Problem(
            f"the TLS certificate of Kafka at {where} is not signed by {trusted}: "
            f"{exc.verify_message.rstrip('.')}",
            "set sink.ssl_cafile to the CA that signed the brokers' certificates",
        )
    if isinstance(exc, ssl.SSLError):
        return Problem(
            f"the TLS handshake with Kafka at {where} failed: {exc.reason or exc}",
            "check sink.security_protocol (does that listener speak TLS?) and sink.ssl_*",
        )
    if isinstance(exc, TimeoutError):
        return Problem(
            f"Kafka at {where} did not answer within {CONNECT_TIMEOUT_S:.0f} s",
            "check sink.bootstrap_servers and sink.security_protocol (a TLS or SASL listener "
            "gives no answer to a client that speaks another protocol)",
        )
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return Problem(
        f"cannot reach Kafka at {where}: {reason}",
        "check sink.bootstrap_servers (host:port of brokers, comma-separated)",
    )
