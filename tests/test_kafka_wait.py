"""The Kafka sink's own warnings while Kafka keeps a write waiting, and the line when it
is back (also when the write that goes through is a new sink's, after starting over)."""

from __future__ import annotations

import asyncio

from cdcd.sinks.kafka.wait import KafkaWait


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict]] = []

    def warning(self, event: str, **fields) -> None:
        self.lines.append((event, fields))


def test_a_long_wait_is_reported_repeatedly_and_its_end_once():
    log = Log()

    async def main() -> None:
        watch = KafkaWait("k1:9092", log, first_warning_s=0.05, repeat_s=0.1)
        async with watch.waiting():
            await asyncio.sleep(0.01)  # quick: nothing said
        assert log.lines == []
        async with watch.waiting():
            await asyncio.sleep(0.29)
        # The daemon started over: a new sink's first commit ends the outage.
        again = KafkaWait("k1:9092", log, first_warning_s=0.05, repeat_s=0.1)
        async with again.waiting():
            pass
        again.answered()

    asyncio.run(main())
    events = [event for event, _ in log.lines]
    # After 0.05 s, then every 0.1 s while it waits: three times in 0.29 s.
    assert all(e.startswith("waiting for Kafka at k1:9092: nothing committed for ") for e in events[:3])
    waited = [fields["waited_s"] for _, fields in log.lines[:3]]
    assert waited == sorted(waited) and waited[0] >= 0.0
    assert len(events) == 4 and events[3].startswith("Kafka at k1:9092 is back after")


def test_a_failed_wait_says_nothing_about_being_back():
    log = Log()

    async def main() -> None:
        watch = KafkaWait("k2:9092", log, first_warning_s=0.01)
        try:
            async with watch.waiting():
                await asyncio.sleep(0.03)
                raise ConnectionError("gave up")
        except ConnectionError:
            pass

    asyncio.run(main())
    assert [event for event, _ in log.lines] == [
        "waiting for Kafka at k2:9092: nothing committed for 0 s"
    ]
