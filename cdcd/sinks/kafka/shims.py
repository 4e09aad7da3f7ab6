"""Every place where cdcd reaches into aiokafka past its public API, and why.

aiokafka's public face lacks a few things cdcd needs for speed and for clear failures.
They are all here, named, so that an aiokafka upgrade is checked in one place:
``tests/test_kafka_shims.py`` fails loudly when the installed aiokafka no longer has
what these rely on (``missing()`` lists it). Nothing is patched at import: the sink calls
``install()`` when it starts (idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import codec as _codec
from aiokafka import conn as _conn_module
from aiokafka.producer import sender as _sender_module
from aiokafka.record import default_records as _py_records

try:
    from aiokafka.record._crecords import default_records as _c_records
except ImportError:  # aiokafka built without its C extensions
    _c_records = None

# A transaction begun right after a commit waits for the coordinator to finish writing the
# previous one's markers (a few ms); aiokafka polls every 20 ms (KAFKA-5477), which caps
# exactly-once at ~45 transactions/s and adds 20 ms to each. Poll every 2 ms instead.
CONCURRENT_TRANSACTIONS_BACKOFF_S = 0.002

# lz4 as the Java client does it at its default level: its fast compressor. aiokafka asks
# cramjam for level 9, which is LZ4 HC: ten times slower for about the same size (measured
# on envelopes: 3.6 ms against 0.3 ms per MB, 27.1 against 26.7 kB out). The record batch
# builders (the C one and the Python one) look lz4_encode up in their module at each batch.
LZ4_LEVEL = 1

_installed = False


def _close_tls_at_once(close: Any) -> Any:
    """``AIOKafkaConnection.close`` that does not wait for the TLS closing handshake.

    aiokafka's clients wait on close for each connection to be lost; over TLS the event
    loop first waits for the broker's close_notify, which a broker answering a fetch in
    flight may never send: a consumer's stop() then took the loop's 30 s TLS shutdown
    timeout (one in a few over SASL_SSL). Once nothing is left to send, the connection is
    dropped instead (Kafka's own framing tells a whole response from a cut one)."""

    def close_connection(self: Any, reason: Any = None, exc: Any = None) -> Any:
        transport = getattr(self._writer, "transport", None)
        at_once = (
            transport is not None
            and not transport.is_closing()
            and transport.get_extra_info("sslcontext") is not None
            and not transport.get_write_buffer_size()
        )
        closed = close(self, reason, exc)
        if at_once and transport is not None:
            transport.abort()
        return closed

    close_connection.cdcd_shim = True  # type: ignore[attr-defined]
    return close_connection


def _lz4_fast(payload: Any, level: int = LZ4_LEVEL) -> bytes:
    return _codec.lz4_encode(payload, level)


def _record_modules() -> list[Any]:
    return [m for m in (_py_records, _c_records) if m is not None]


async def missing() -> list[str]:
    """What these shims rely on and the installed aiokafka lacks (empty: all there).
    Builds a transactional producer without starting it (no connection is made)."""
    from aiokafka.client import AIOKafkaClient

    gaps = []
    connection = _conn_module.AIOKafkaConnection
    if not callable(getattr(connection, "close", None)) or "_writer" not in vars(
        connection("127.0.0.1", 9)
    ):
        gaps.append("aiokafka.conn.AIOKafkaConnection.close and ._writer (closing TLS at once)")
    if not hasattr(_sender_module, "BACKOFF_OVERRIDE"):
        gaps.append("aiokafka.producer.sender.BACKOFF_OVERRIDE (the transactions backoff)")
    for module in _record_modules():
        if not hasattr(module, "lz4_encode"):
            gaps.append(f"{module.__name__}.lz4_encode (the batch builders' lz4 lookup)")
    for method in ("_wait_on_metadata", "force_metadata_update"):
        if not callable(getattr(AIOKafkaClient, method, None)):
            gaps.append(f"AIOKafkaClient.{method}")
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", transactional_id="cdcd-shims")
    manager = getattr(producer, "_txn_manager", None)
    if not callable(getattr(manager, "wait_for_transaction_end", None)):
        gaps.append("AIOKafkaProducer._txn_manager.wait_for_transaction_end")
    if not hasattr(getattr(producer, "_sender", None), "sender_task"):
        gaps.append("AIOKafkaProducer._sender.sender_task")
    if not isinstance(getattr(producer, "client", None), AIOKafkaClient):
        gaps.append("AIOKafkaProducer.client")
    return gaps


def install() -> None:
    """Apply the shims (the backoff, the lz4 level, closing TLS connections at once);
    idempotent."""
    global _installed
    if _installed:
        return
    if callable(getattr(_conn_module.AIOKafkaConnection, "close", None)):
        _conn_module.AIOKafkaConnection.close = _close_tls_at_once(  # type: ignore[method-assign]
            _conn_module.AIOKafkaConnection.close
        )
    if hasattr(_sender_module, "BACKOFF_OVERRIDE"):
        _sender_module.BACKOFF_OVERRIDE = CONCURRENT_TRANSACTIONS_BACKOFF_S
    for module in _record_modules():
        if hasattr(module, "lz4_encode"):
            module.lz4_encode = _lz4_fast
    _installed = True


async def wait_on_metadata(producer: AIOKafkaProducer, topic: str) -> set[int]:
    """The partitions of ``topic`` once the producer's metadata has them (a new topic's
    leader is elected asynchronously); aiokafka's send() does this privately."""
    found: set[int] = await producer.client._wait_on_metadata(topic)
    return found


async def refresh_metadata(consumer: AIOKafkaConsumer) -> None:
    """Fetch the cluster's metadata now (the consumer caches it for metadata_max_age_ms)."""
    await consumer._client.force_metadata_update()


def transaction_error(producer: AIOKafkaProducer | None) -> BaseException | None:
    """Why the producer's transaction manager refused a transition (it raises a bare
    AssertionError after a fatal error such as a fenced producer), if it says."""
    manager = getattr(producer, "_txn_manager", None)
    waiter = manager.wait_for_transaction_end() if manager is not None else None
    if waiter is not None and waiter.done() and waiter.exception() is not None:
        exc: BaseException = waiter.exception()
        return exc
    return None


async def abandon(producer: AIOKafkaProducer) -> None:
    """Give up a producer whose stop() did not finish: its sender task is cancelled and
    its connections closed (stop() waits for the sender, which may wait for ever)."""
    sender = getattr(producer, "_sender", None)
    task: asyncio.Task[Any] | None = getattr(sender, "sender_task", None)
    if task is not None:
        task.cancel()
    with contextlib.suppress(Exception):
        await producer.client.close()
