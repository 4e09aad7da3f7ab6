"""cdcd says so, at warning level, while Kafka keeps it waiting.

When a broker is away, aiokafka retries on its own for a minute or two before the
producer gives up (and the daemon starts over from its last committed offset); until
then only aiokafka's own lines said that anything was wrong. A write that Kafka has not
committed (exactly-once) or acknowledged (at-least-once) after ``FIRST_WARNING_S`` is
logged, again every ``REPEAT_S`` while it waits, and the first write or start that goes
through after that says that Kafka is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

FIRST_WARNING_S = 5.0
REPEAT_S = 30.0

# bootstrap servers -> when (monotonic) the first write that kept waiting began. Kept for
# the process, not the sink: the daemon builds a new sink when it starts over, and the line
# saying that Kafka is back then comes from the new one.
_outages: dict[str, float] = {}


class KafkaWait:
    """Watches the waits of one sink for Kafka."""

    def __init__(
        self,
        bootstrap: str,
        log: Any,
        *,
        done: str = "committed",
        first_warning_s: float = FIRST_WARNING_S,
        repeat_s: float = REPEAT_S,
    ) -> None:
        self.bootstrap = bootstrap
        self.log = log
        self.done = done
        self.first_warning_s = first_warning_s
        self.repeat_s = repeat_s

    @contextlib.asynccontextmanager
    async def waiting(self) -> AsyncIterator[None]:
        """Around one wait for Kafka (a write's batches, a commit): warns while it lasts,
        and, when it ends well after an outage, says that Kafka is back."""
        if self.log is None:
            yield
            return
        loop = asyncio.get_running_loop()
        began = time.monotonic()
        timer: list[asyncio.TimerHandle] = []

        def warn() -> None:
            _outages.setdefault(self.bootstrap, began)
            waited = time.monotonic() - began
            self.log.warning(
                f"waiting for Kafka at {self.bootstrap}: nothing {self.done} for {waited:.0f} s",
                waited_s=round(waited, 1),
            )
            timer[:] = [loop.call_later(self.repeat_s, warn)]

        # A timer, not a task: this runs for every Kafka transaction.
        timer.append(loop.call_later(self.first_warning_s, warn))
        try:
            yield
            self.answered()
        finally:
            timer[0].cancel()

    def answered(self) -> None:
        """Kafka answered (a write went through, a sink started): end a reported outage."""
        began = _outages.pop(self.bootstrap, None)
        if began is not None and self.log is not None:
            down = time.monotonic() - began
            self.log.warning(
                f"Kafka at {self.bootstrap} is back after {down:.0f} s", down_s=round(down, 1)
            )
