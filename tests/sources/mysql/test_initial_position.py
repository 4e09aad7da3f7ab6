"""``source.initial_position = "file:pos"``: the daemon's first start is exactly there.

On MariaDB the binlog's name holds a '-' (``mariadb-bin.000003:4``), which an earlier
parser took for a GTID.
"""

from __future__ import annotations

import json

import pytest
from support import consume, daemon, run_cli, write_config

pytestmark = pytest.mark.integration


def master_status(my_case) -> tuple[str, int]:
    with my_case.conn.cursor() as cursor:
        cursor.execute("SHOW MASTER STATUS")
        file, pos = cursor.fetchone()[:2]
    return str(file), int(pos)


def test_initial_file_pos_streams_exactly_what_follows_it(my_case, tmp_path):
    db = my_case.database
    my_case.ddl(f"CREATE TABLE {db}.items (id INT PRIMARY KEY)")
    for i in range(1, 6):
        my_case.execute(f"INSERT INTO {db}.items VALUES ({i})")
    file, pos = master_status(my_case)
    for i in range(6, 11):
        my_case.execute(f"INSERT INTO {db}.items VALUES ({i})")
    my_case.execute(f"INSERT INTO {db}.items VALUES (11), (12)")
    config = my_case.config(["items"], initial_position=f"{file}:{pos}")
    topic = my_case.topic("items")
    with daemon(tmp_path, config) as d:
        messages = consume(my_case.bootstrap, [topic], expect=7, settle=2)
        assert d.terminate() == 0
    print(f"\ninitial_position {file}:{pos} ({my_case.flavor})")
    assert [m.key["id"] for m in messages] == list(range(6, 13))
    start = next(json.loads(x) for x in d.log_text().splitlines() if '"streaming"' in x)
    if my_case.flavor == "mariadb":
        # Streamed from the GTID position that starts there (the library cannot ask
        # MariaDB for a file/pos).
        with my_case.conn.cursor() as cursor:
            cursor.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
            assert start["gtid_set"] == cursor.fetchone()[0], start
    else:
        assert (start["file"], start["pos"]) == (file, pos), start
    assert messages[0].value["source"]["file"] == file
    assert messages[0].value["source"]["pos"] >= pos

    # The stored offset is used from now on, not initial_position: a restart repeats nothing.
    my_case.execute(f"INSERT INTO {db}.items VALUES (13)")
    d.start()
    messages = consume(my_case.bootstrap, [topic], expect=8, settle=2)
    assert d.terminate() == 0
    assert [m.key["id"] for m in messages] == list(range(6, 14))
    shown = run_cli("offsets", "show", "--config", str(d.config_path))
    assert shown.returncode == 0, shown.stderr
    line = next(x for x in shown.stdout.splitlines() if x.startswith("position:"))
    print(line)
    stored = json.loads(line.split("  ", 1)[1])
    assert (stored["file"], stored["pos"]) == master_status(my_case)

    # A file/pos-only offset stored by hand (no GTID set) resumes exactly there too.
    my_case.execute(f"INSERT INTO {db}.items VALUES (14)")
    file, pos = master_status(my_case)
    my_case.execute(f"INSERT INTO {db}.items VALUES (15)")
    by_hand = {"kind": "mysql", "flavor": my_case.flavor, "file": file, "pos": pos}
    result = run_cli(
        "offsets", "set", "--yes", "--config", str(d.config_path), "--position", json.dumps(by_hand)
    )
    assert result.returncode == 0, result.stderr
    d.start()
    messages = consume(my_case.bootstrap, [topic], expect=9, settle=2)
    assert d.terminate() == 0
    assert [m.key["id"] for m in messages] == [*range(6, 14), 15]  # 14 came before it


def test_a_file_pos_that_is_no_binlog_is_one_line(my_case, tmp_path):
    my_case.ddl(f"CREATE TABLE {my_case.database}.items (id INT PRIMARY KEY)")
    file, _ = master_status(my_case)
    for initial in ("no-such-bin.000042:4", f"{file}:5"):
        if initial.endswith(":5") and my_case.flavor == "mysql":
            continue  # MySQL cannot tell whether an event starts at a position
        config = my_case.config(["items"], initial_position=initial)
        config["log"] = {"level": "warning"}
        path = write_config(tmp_path / "c.toml", config)
        result = run_cli("run", "--config", str(path), timeout=90)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        print(f"\n{lines}")
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert len(lines) == 1 and lines[0].startswith("cdcd: error: "), lines
        assert initial in lines[0] and "source.initial_position" in lines[0], lines
