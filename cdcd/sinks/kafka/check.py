"""``cdcd check`` for the Kafka sink: what would stop or spoil streaming, with the fix.

Nothing here writes to Kafka, joins the daemon's group or uses its transactional id, so
it may run beside a running daemon:

- reachable and authenticated: a connection to a bootstrap server and to each broker it
  advertises, with the ``[sink]`` settings (TLS, SASL), the failure's own reason told
  (``kafka_connect``);
- the offsets topic present with ``cleanup.policy=compact``, or creatable
  (CreateTopics with ``validate_only``);
- topics under ``<topic_prefix>``: creatable (CreateTopics with ``validate_only`` for a
  probe name under the prefix), or, when not, some present;
- the coordinators the daemon needs: the transaction coordinator for its transactional
  id (exactly-once) and the group coordinator for its group, and for the group of the
  Kafka signal channel (a warning: without it the daemon streams without signals).

The ACLs behind each: ``docs/privileges.md``.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    for_code,
)

from cdcd.config import Config, OffsetsConfig
from cdcd.errors import ConfigError
from cdcd.sinks.kafka.client import client_options, default_replication, quiet_library_logs
from cdcd.sinks.kafka.config import KafkaSinkConfig
from cdcd.sinks.kafka.connect import connection_problem
from cdcd.sinks.kafka.errors import explain_kafka_error
from cdcd.sinks.kafka.offsets import OffsetsTopic
from cdcd.sinks.kafka.status import status_topic
from cdcd.sources.base import Problem

# A fresh cluster creates __transaction_state / __consumer_offsets on the first lookup
# and answers "coordinator not available" meanwhile: a few seconds, not a problem.
COORDINATOR_WAIT_S = 15.0
PROBE_TOPIC = "cdcd-check"  # <topic_prefix>.cdcd-check: validated, never created


async def check(config: Config) -> list[Problem]:
    """What would stop or spoil streaming to the Kafka of ``config.sink``, with the fixes."""
    sink = config.sink
    assert isinstance(sink, KafkaSinkConfig)
    try:
        options = client_options(sink)
    except ConfigError as exc:
        return [Problem(str(exc), "")]
    offsets = OffsetsTopic(
        options, sink, config.offsets, name=config.name, source_kind=config.source.kind
    )
    with quiet_library_logs():
        unreachable = await connection_problem(sink, options)
        if unreachable is not None:
            return [unreachable]
        admin = AIOKafkaAdminClient(**options, client_id=f"{offsets.transactional_id}-check")
        problems: list[Problem] = []
        try:
            await asyncio.wait_for(admin.start(), 30)
            brokers = len((await admin.describe_cluster())["brokers"])
            topics = set(await admin.list_topics())
            problems += await _offsets_topic(admin, offsets, topics, brokers)
            problems += await _data_topics(admin, sink, topics, brokers)
            if config.ha.enabled:
                problems += await _pair_topics(admin, config, offsets, topics, brokers)
            if config.delivery == "exactly-once":
                problems += await _transaction_coordinator(admin, offsets.transactional_id)
            group = await _group_coordinator(admin, offsets.group_id)
            problems += group
            if config.signals.kafka_topic and not group:
                problems += await _signals_group(
                    admin, config.signals.kafka_topic, offsets.group_id
                )
        except (KafkaError, TimeoutError) as exc:
            problems.append(Problem(str(explain_kafka_error(exc, sink.bootstrap_servers)), ""))
        finally:
            await admin.close()
    return problems


# -- topics ----------------------------------------------------------------------------


async def _offsets_topic(
    admin: AIOKafkaAdminClient,
    offsets: OffsetsTopic,
    topics: set[str],
    brokers: int,
    what: str = "the offsets topic",
) -> list[Problem]:
    if offsets.topic in topics:
        policy = await offsets.cleanup_policy(admin)
        if policy is None:
            return [
                Problem(
                    f"Kafka does not tell cdcd the cleanup.policy of {what} "
                    f"{offsets.topic!r}: whether it is compacted is not known",
                    f"grant DESCRIBE_CONFIGS on Topic {offsets.topic}, or see that it is "
                    f"compacted (kafka-configs.sh --describe --entity-type topics "
                    f"--entity-name {offsets.topic})",
                    fatal=False,
                )
            ]
        refused = offsets.not_compacted(policy)
        return [Problem(*refused)] if refused is not None else []
    return await _creatable(admin, offsets.new_topic(brokers), what, "offsets", brokers)


async def _creatable(
    admin: AIOKafkaAdminClient, topic: NewTopic, what: str, section: str, brokers: int
) -> list[Problem]:
    """Whether the daemon could create ``topic`` (``what``: its role, in words)."""
    code, message = await _validate_creation(admin, topic)
    if code == TopicAlreadyExistsError.errno:  # there, but not listed to cdcd
        return [
            Problem(
                f"{what} {topic.name!r} exists but Kafka does not show it to cdcd",
                f"grant DESCRIBE, READ and WRITE on Topic {topic.name}",
            )
        ]
    if code == 0:
        return []
    what = f"{what} {topic.name!r} does not exist and cannot be created"
    return [_not_creatable(what, code, message, f"Topic {topic.name}", section, brokers)]


async def _pair_topics(
    admin: AIOKafkaAdminClient,
    config: Config,
    offsets: OffsetsTopic,
    topics: set[str],
    brokers: int,
) -> list[Problem]:
    """The topics of an active/standby pair (``[ha]``): the heartbeats' and the dedup
    records' (compacted, like the offsets topic)."""
    ha = config.ha
    problems = []
    if ha.status_topic not in topics:
        status = status_topic(ha.status_topic, brokers, offsets.sink.replication_factor)
        problems += await _creatable(
            admin, status, "the status topic (ha.status_topic)", "ha", brokers
        )
    dedup = OffsetsTopic(
        offsets.options,
        offsets.sink,
        OffsetsConfig(topic=ha.dedup_topic, replication_factor=offsets.sink.replication_factor),
        name=config.name,
        source_kind=config.source.kind,
    )
    problems += await _offsets_topic(
        admin, dedup, topics, brokers, what="the dedup topic (ha.dedup_topic)"
    )
    if problems:
        problems[-1] = Problem(
            problems[-1].what,
            f"{problems[-1].fix} (an active/standby pair needs READ and WRITE on both; or "
            "set ha.enabled = false for a single instance)",
            problems[-1].fatal,
        )
    return problems


async def _data_topics(
    admin: AIOKafkaAdminClient, sink: KafkaSinkConfig, topics: set[str], brokers: int
) -> list[Problem]:
    prefix = sink.topic_prefix
    probe = NewTopic(
        f"{prefix}.{PROBE_TOPIC}",
        sink.partitions,
        default_replication(sink.replication_factor, brokers),
    )
    code, message = await _validate_creation(admin, probe)
    if code in (0, TopicAlreadyExistsError.errno):
        return []
    present = sorted(t for t in topics if t == prefix or t.startswith(f"{prefix}."))
    what = f"topics named {prefix}.* cannot be created"
    problem = _not_creatable(what, code, message, f"topics prefixed {prefix}", "sink", brokers)
    if not present:
        return [problem]
    # The daemon creates a table's topic when its first change comes: with some topics
    # there, streaming works until a table whose topic is missing.
    return [
        Problem(
            f"{problem.what}; the {len(present)} present ({', '.join(present[:3])}"
            f"{', ...' if len(present) > 3 else ''}) are used, and the daemon stops at the "
            "first change of a table whose topic is missing",
            f"{problem.fix}, or create every table's topic beforehand",
            fatal=False,
        )
    ]


async def _validate_creation(admin: AIOKafkaAdminClient, topic: NewTopic) -> tuple[int, str]:
    """(error code, message) of creating ``topic``, validated only: nothing is created."""
    response = await admin.create_topics([topic], validate_only=True)
    for _name, code, *rest in response.topic_errors:
        return code, (rest[0] if rest and rest[0] else for_code(code).__name__)
    return 0, ""


def _not_creatable(
    what: str, code: int, message: str, resource: str, section: str, brokers: int
) -> Problem:
    error = for_code(code)
    if error in (TopicAuthorizationFailedError, ClusterAuthorizationFailedError):
        return Problem(f"{what}: Kafka refuses it ({message})", f"grant CREATE on {resource}")
    if error.__name__ == "InvalidReplicationFactorError":
        return Problem(
            f"{what}: {message}",
            f"set {section}.replication_factor to at most the number of brokers ({brokers})",
        )
    if error.__name__ == "InvalidPartitionsError":
        return Problem(f"{what}: {message}", f"fix {section}.partitions")
    return Problem(
        f"{what}: {error.__name__}: {message}",
        "create it beforehand, or ask the Kafka administrators",
    )


# -- coordinators ----------------------------------------------------------------------


async def _find_coordinator(admin: AIOKafkaAdminClient, key: str, kind: int) -> KafkaError | None:
    """None if Kafka names a coordinator for ``key`` (kind 0: a group, 1: a transactional
    id); else the error, once a retriable one lasted ``COORDINATOR_WAIT_S``."""
    deadline = time.monotonic() + COORDINATOR_WAIT_S
    while True:
        try:
            await admin.find_coordinator(key, kind)
            return None
        except KafkaError as exc:
            if not getattr(exc, "retriable", False) or time.monotonic() > deadline:
                return exc
        await asyncio.sleep(0.5)


async def _transaction_coordinator(
    admin: AIOKafkaAdminClient, transactional_id: str
) -> list[Problem]:
    # Registering the transactional id (InitProducerId) would prove WRITE on it, but it
    # fences the daemon if it runs. FindCoordinator needs DESCRIBE on the id (which WRITE
    # implies): it proves that the id is not refused outright and that Kafka has a
    # transaction coordinator (its __transaction_state topic could be created); not that
    # WRITE is granted.
    error = await _find_coordinator(admin, transactional_id, 1)
    if error is None:
        return []
    if isinstance(error, TransactionalIdAuthorizationFailed):
        return [
            Problem(
                f"Kafka refuses the transactional id {transactional_id} that exactly-once "
                "delivery writes with",
                f"grant WRITE and DESCRIBE on TransactionalId {transactional_id}, or set "
                'delivery = "at-least-once"',
            )
        ]
    if getattr(error, "retriable", False):
        return [
            Problem(
                "Kafka has no transaction coordinator (its __transaction_state topic is not "
                f"available: {error.__class__.__name__}), which exactly-once delivery needs",
                "on a cluster of fewer than 3 brokers, set the brokers' "
                "transaction.state.log.replication.factor and transaction.state.log.min.isr "
                'to at most their number; or set delivery = "at-least-once"',
            )
        ]
    raise error


async def _group_coordinator(admin: AIOKafkaAdminClient, group_id: str) -> list[Problem]:
    # A running daemon is a member of its group (so that `cdcd offsets` can tell that it
    # runs); joining needs READ on the group. FindCoordinator needs DESCRIBE, which READ
    # implies: a refusal here is sure to stop the daemon, a pass does not prove READ.
    error = await _find_coordinator(admin, group_id, 0)
    if error is None:
        return []
    if isinstance(error, GroupAuthorizationFailedError):
        return [
            Problem(
                f"Kafka refuses the consumer group {group_id} (a running daemon is a member, "
                "so that cdcd offsets can tell it runs)",
                f"grant READ and DESCRIBE on Group {group_id}",
            )
        ]
    if getattr(error, "retriable", False):
        return [
            Problem(
                "Kafka has no group coordinator (its __consumer_offsets topic is not "
                f"available: {error.__class__.__name__})",
                "on a cluster of fewer than 3 brokers, set the brokers' "
                "offsets.topic.replication.factor to at most their number",
            )
        ]
    raise error


async def _signals_group(admin: AIOKafkaAdminClient, topic: str, group_id: str) -> list[Problem]:
    group = f"{group_id}-signals"  # as SignalChannel names it
    error = await _find_coordinator(admin, group, 0)
    if not isinstance(error, GroupAuthorizationFailedError):
        return []  # found, or no coordinator: the daemon's own group's finding says so
    return [
        Problem(
            f"Kafka refuses the consumer group {group} of the signal channel: the daemon "
            f"streams, but reads no signals from topic {topic}",
            f"grant READ on Group {group} and READ, DESCRIBE on Topic {topic}, or set "
            'signals.kafka_topic = ""',
            fatal=False,
        )
    ]
