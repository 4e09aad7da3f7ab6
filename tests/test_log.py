"""The log: cdcd's lines and the libraries' (standard ``logging``) alike, one JSON object
a line when not on a terminal; library chatter quieted and rate-limited."""

from __future__ import annotations

import json
import subprocess
import sys

from support import ROOT

PROGRAM = """
import logging
from cdcd.log import setup_logging

log = setup_logging("info", "json").bind(name="shop")
log.info("started", delivery="exactly-once")
library = logging.getLogger("aiokafka.conn")
for attempt in range(3):  # while a broker is down: the same line, again and again
    library.warning("Unable connect to %r", "127.0.0.1:9092")
library.info("chatter")
logging.getLogger("aiokafka.consumer.group_coordinator").error("retrying a lookup")
try:
    raise ValueError("boom")
except ValueError:
    logging.getLogger("asyncio").exception("Task exception was never retrieved")
"""


def run_program() -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return [json.loads(line) for line in result.stderr.splitlines()]


def test_library_lines_are_json_like_cdcds_own():
    lines = run_program()
    assert [line["event"] for line in lines] == [
        "started",
        "Unable connect to '127.0.0.1:9092'",
        "Task exception was never retrieved",
    ], lines
    started, library, failure = lines
    assert started["name"] == "shop" and started["level"] == "info"
    assert library["logger"] == "aiokafka.conn" and library["level"] == "warning"
    assert library["timestamp"].endswith("Z")
    assert failure["logger"] == "asyncio" and failure["level"] == "error"
    assert failure["exception"][0]["exc_type"] == "ValueError"


LOCALS = """
import logging, sys
from cdcd.log import setup_logging

log = setup_logging("debug", sys.argv[1])

def connect(sasl_plain_password):
    raise ConnectionError("refused")

try:
    connect("a-secret-in-a-frame")
except ConnectionError:
    logging.getLogger("asyncio").exception("Task exception was never retrieved")
    log.exception("failed")
"""


def test_a_traceback_shows_no_local_variables():
    # structlog's and rich's tracebacks show each frame's locals by default: a frame of
    # a connection holds its password.
    for fmt in ("json", "console"):
        result = subprocess.run(
            [sys.executable, "-c", LOCALS, fmt],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
        assert result.stderr.count("ConnectionError") >= 2, result.stderr
        assert "connect" in result.stderr  # the frames are there, their variables not
        assert "a-secret-in-a-frame" not in result.stderr, result.stderr
