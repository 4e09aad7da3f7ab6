"""The Python hook in a running daemon: it reshapes what it is given; an exception in
it stops the daemon (exit 1) with the hook's traceback and the event's position, and
nothing past it is acknowledged: a restart with the hook fixed publishes that event
once, and what came before it not again. Real PostgreSQL and Kafka."""

from __future__ import annotations

from pathlib import Path

import pytest
from offsets_support import start_again
from support import consume, daemon, unique_name
from transforms_support import database

pytestmark = pytest.mark.integration

HOOK = """
def reshape(message):
    row = message.event.after if message.event is not None else None
    if row is not None and row["customer"] == "boom" and {fail}:
        raise ValueError("cannot ship to boom")
    if row is not None:
        message.value = {{"customer": row["customer"], "hooked": True}}
    return [message]
"""


def test_a_failing_hook_stops_the_daemon_with_nothing_lost(
    request, tmp_path: Path, kafka_bootstrap: str, monkeypatch
):
    module = unique_name("hook_")
    (tmp_path / f"{module}.py").write_text(HOOK.format(fail="True"))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    with database("postgres", request) as db:
        config = db.config(kafka_bootstrap, transforms={"hook": f"{module}:reshape"})
        topic = f"{db.name}.{db.name}.orders"
        with daemon(tmp_path, config) as d:
            db.run([("INSERT INTO {db}.orders VALUES (1, 'ann', 1, NULL, NULL)", ())])
            first = consume(kafka_bootstrap, [topic], expect=1)
            assert [m.value for m in first] == [{"customer": "ann", "hooked": True}]
            db.run(
                [
                    ("INSERT INTO {db}.orders VALUES (2, 'boom', 2, NULL, NULL)", ()),
                    ("INSERT INTO {db}.orders VALUES (3, 'cy', 3, NULL, NULL)", ()),
                ]
            )
            assert d.process is not None
            assert d.process.wait(60) == 1
            log = d.log_text()
            error = next(line for line in log.splitlines() if line.startswith("cdcd: error: "))
            assert (
                f"transforms.hook {module}:reshape failed at {db.name}.orders op c, lsn " in error
            )
            assert "ValueError: cannot ship to boom" in error
            assert 'raise ValueError("cannot ship to boom")' in log  # the hook's traceback
            (tmp_path / f"{module}.py").write_text(HOOK.format(fail="False"))
            start_again(d, timeout=120)
            messages = consume(kafka_bootstrap, [topic], expect=3, settle=2)
            assert d.terminate() == 0
    assert [m.value["customer"] for m in messages] == ["ann", "boom", "cy"]
