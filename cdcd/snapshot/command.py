"""``cdcd snapshot``: a signal to the running daemon, then its progress until done.

The signal goes through Kafka (``signals.kafka_topic``), so the daemon may run anywhere;
its notifications (``notifications.topic``) say how it goes. Exit status: 0 done (or
sent, with ``--no-wait``), 1 refused, aborted, unanswered or not running.
"""

from __future__ import annotations

import sys
import uuid
from typing import TYPE_CHECKING

from cdcd.snapshot.signals import Signal
from cdcd.snapshot.watch import SnapshotFailed, Watch, describe_progress

if TYPE_CHECKING:
    from cdcd.config import Config

_UNTIL = {
    "execute-snapshot": ("COMPLETED",),
    "pause-snapshot": ("PAUSED",),
    "resume-snapshot": ("RESUMED",),
    "stop-snapshot": ("ABORTED",),
}


async def run_snapshot_command(
    config: Config,
    *,
    tables: tuple[str, ...],
    where: str | None,
    blocking: bool,
    wait: bool,
    status: bool,
    action: str | None,
    timeout_s: float,
) -> int:
    from cdcd.sinks.kafka.control import notifications, send_to_daemon
    from cdcd.sinks.kafka.offsets import offsets_status

    if status:
        found = await offsets_status(config)
        running = "running" if found.members else "not running"
        print(f"cdcd {config.name!r}: {running}")
        print(describe_progress(found.offset.snapshot if found.offset else None))
        return 0
    kind = action or "execute-snapshot"
    signal = Signal(
        str(uuid.uuid4()),
        kind,
        collections=tables,
        snapshot_type="blocking" if blocking else "incremental",
        conditions={table: where for table in tables} if where else {},
    )
    since = await send_to_daemon(config, signal)
    print(f"signal {kind} {signal.id} sent to cdcd {config.name!r}", file=sys.stderr)
    if not wait:
        return 0
    watch = Watch(signal.id, _UNTIL[kind])
    try:
        end = await watch.follow(notifications(config, since, idle_timeout_s=timeout_s))
    except SnapshotFailed as exc:
        print(f"cdcd: error: {exc}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(
            f"cdcd: error: no answer from cdcd {config.name!r} for {timeout_s:g} s "
            "(its log says why; the snapshot may still run: cdcd snapshot --status)",
            file=sys.stderr,
        )
        return 1
    data = end.get("additional_data") or {}
    done = end.get("type")
    rows = data.get("total_rows_scanned")
    print(f"snapshot {end.get('id')}: {done}" + (f", {int(rows):,} rows" if rows else ""))
    return 0
