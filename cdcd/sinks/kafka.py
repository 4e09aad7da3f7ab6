"""Kafka sink on aiokafka: idempotent producer, ``acks=all``, compression, batching.

Topics are created when first written to (partitions and replication configurable).
A ``Delivery`` completes only when the broker acknowledged every record of a write.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    ProducerFenced,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
)

from cdcd.config import Config, KafkaSinkConfig
from cdcd.envelope import Record
from cdcd.errors import FencedError, SinkError
from cdcd.sinks.base import Delivery


def client_options(sink: KafkaSinkConfig) -> dict[str, Any]:
    """Connection options shared by the producer, the admin client and consumers."""
    options: dict[str, Any] = {
        "bootstrap_servers": sink.bootstrap_servers,
        "security_protocol": sink.security_protocol,
    }
    if sink.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=sink.ssl_cafile)
        if sink.ssl_certfile:
            context.load_cert_chain(sink.ssl_certfile, sink.ssl_keyfile)
        options["ssl_context"] = context
    if sink.sasl_mechanism:
        password = sink.sasl_password()
        options.update(
            sasl_mechanism=sink.sasl_mechanism,
            sasl_plain_username=sink.sasl_username,
            sasl_plain_password=password.get_secret_value() if password else None,
        )
    return options


def explain_kafka_error(exc: BaseException, bootstrap: str) -> SinkError:
    """A ``SinkError`` that says what went wrong with Kafka in words a user can act on."""
    if isinstance(exc, ProducerFenced):
        return FencedError(
            "another cdcd instance with the same name took over the Kafka producer; "
            "this one stops (two active instances must not share a name)"
        )
    if isinstance(exc, KafkaConnectionError):
        return SinkError(
            f"cannot reach Kafka at {bootstrap}: no broker answered; check sink.bootstrap_servers"
        )
    if isinstance(exc, TopicAuthorizationFailedError):
        return SinkError(f"Kafka refused access to a topic: grant WRITE/CREATE on it ({exc})")
    return SinkError(f"Kafka error: {exc.__class__.__name__}: {exc}")


class KafkaSink:
    def __init__(self, sink: KafkaSinkConfig, *, client_id: str, log: Any = None) -> None:
        self.config = sink
        self.client_id = client_id
        self.log = log
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._topics: set[str] = set()

    async def start(self) -> None:
        options = client_options(self.config)
        compression = None if self.config.compression == "none" else self.config.compression
        self._producer = AIOKafkaProducer(
            **options,
            client_id=self.client_id,
            enable_idempotence=True,
            acks="all",
            compression_type=compression,
            linger_ms=self.config.linger_ms,
            max_batch_size=self.config.max_batch_bytes,
            max_request_size=self.config.max_request_bytes,
        )
        self._admin = AIOKafkaAdminClient(**options, client_id=f"{self.client_id}-admin")
        # aiokafka logs each failed bootstrap attempt itself; the error raised here says it all.
        library_log = logging.getLogger("aiokafka")
        level = library_log.level
        library_log.setLevel(logging.CRITICAL)
        try:
            await asyncio.wait_for(self._producer.start(), timeout=30)
            await asyncio.wait_for(self._admin.start(), timeout=30)
            self._topics = set(await self._admin.list_topics())
        except TimeoutError:
            await self.close()
            raise SinkError(
                f"cannot reach Kafka at {self.config.bootstrap_servers} within 30 s: "
                "check sink.bootstrap_servers"
            ) from None
        except KafkaError as exc:
            await self.close()
            raise explain_kafka_error(exc, self.config.bootstrap_servers) from None
        finally:
            library_log.setLevel(level)

    async def _ensure_topics(self, topics: set[str]) -> None:
        missing = topics - self._topics
        if not missing:
            return
        assert self._admin is not None
        replication = self.config.replication_factor
        if replication is None:
            assert self._producer is not None
            replication = min(3, len(self._producer.client.cluster.brokers()) or 1)
        new = [NewTopic(name, self.config.partitions, replication) for name in sorted(missing)]
        try:
            response = await self._admin.create_topics(new)
        except TopicAlreadyExistsError:
            response = None
        except KafkaError as exc:
            raise explain_kafka_error(exc, self.config.bootstrap_servers) from None
        for name, code, *_ in getattr(response, "topic_errors", ()):
            if code not in (0, TopicAlreadyExistsError.errno):
                raise SinkError(f"cannot create Kafka topic {name!r}: error code {code}")
        if self.log is not None:
            self.log.info("topics created", topics=sorted(missing))
        # A new topic's leader is elected asynchronously: make the producer see it.
        assert self._producer is not None
        for name in missing:
            await self._producer.client._wait_on_metadata(name)
        self._topics |= missing

    async def write(self, records: list[Record]) -> Delivery:
        assert self._producer is not None
        await self._ensure_topics({record.topic for record in records})
        send = self._producer.send
        futures = []
        try:
            for record in records:
                futures.append(await send(record.topic, record.value, key=record.key))
        except KafkaError as exc:
            raise explain_kafka_error(exc, self.config.bootstrap_servers) from None
        return self._delivered(futures)

    async def _delivered(self, futures: list[asyncio.Future[Any]]) -> None:
        try:
            for future in futures:
                await future
        except KafkaError as exc:
            raise explain_kafka_error(exc, self.config.bootstrap_servers) from None

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                await producer.stop()  # flushes pending batches first
            except KafkaError as exc:
                raise explain_kafka_error(exc, self.config.bootstrap_servers) from None
        if self._admin is not None:
            admin, self._admin = self._admin, None
            await admin.close()


def build(config: Config, log: Any = None, **_: Any) -> KafkaSink:
    assert isinstance(config.sink, KafkaSinkConfig)
    return KafkaSink(config.sink, client_id=f"cdcd-{config.name}", log=log)
