"""Reference reader: python-mysql-replication iterating the rows of the backlog, no Kafka.

Reads the binlog from a file/position to its current end (non-blocking), decoding every
row of ``bench.orders`` (``event.rows``), and prints one JSON line: rows, first-to-last
row event by the wall clock inside this process.

    python benchmarks/pyrepl_reader.py --dsn mysql://root:root@127.0.0.1:23306/ \
        --file mariadb-bin.000001 --pos 4
"""

from __future__ import annotations

import argparse
import json
import time
from urllib.parse import unquote, urlsplit

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--pos", type=int, required=True)
    parser.add_argument("--server-id", type=int, default=5301)
    parser.add_argument("--max-events", type=int, default=0, help="stop after this many rows")
    args = parser.parse_args()
    url = urlsplit(args.dsn)
    stream = BinLogStreamReader(
        connection_settings={
            "host": url.hostname or "127.0.0.1",
            "port": url.port or 3306,
            "user": unquote(url.username or "root"),
            "passwd": unquote(url.password or ""),
        },
        server_id=args.server_id,
        log_file=args.file,
        log_pos=args.pos,
        resume_stream=True,
        blocking=False,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
        only_schemas=["bench"],
        only_tables=["orders"],
        # As cdcd runs it: column names from the binlog's own metadata
        # (binlog_row_metadata=FULL), no information_schema lookup per table map.
        freeze_schema=True,
    )
    rows = 0
    first = last = None
    started = time.time()
    try:
        for event in stream:
            for _row in event.rows:
                rows += 1
            last = time.time()
            if first is None:
                first = last
            if args.max_events and rows >= args.max_events:
                break
    finally:
        stream.close()
    span = (last - first) if first is not None and last is not None else None
    print(
        json.dumps(
            {
                "events": rows,
                "first_to_last_s": round(span, 3) if span is not None else None,
                "wall_s": round(time.time() - started, 3),
                "events_per_s": round(rows / span, 1) if span else None,
            }
        )
    )


if __name__ == "__main__":
    main()
