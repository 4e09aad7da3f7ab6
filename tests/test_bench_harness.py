"""The benchmark harness's own arithmetic: how a latency window is read second by second
and which window counts (benchmarks/latency.py), where Kafka's transaction markers are
(benchmarks/kafka_tools.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import latency  # noqa: E402

S = 1_000_000_000  # ns


def test_by_second_counts_slow_seconds_and_splits_them_at_the_reader():
    start = 100 * S
    # Second 0: ten one-row transactions, each 5 ms to Kafka (2 ms to the reader);
    # second 1: ten more, each 80 ms to Kafka, 70 of them before the reader had them.
    commits, ids, reader_ts = [], {}, {}
    for second, (total_ms, reader_ms) in enumerate([(5, 2), (80, 70)]):
        for k in range(10):
            row = second * 100 + k
            sent = start + second * S + k * 50_000_000
            commits.append([row, 1, sent, sent + 1_000_000])
            ids[row] = sent / 1e6 + total_ms
            reader_ts[row] = sent + reader_ms * 1_000_000
    # One transaction before the window (warm-up): not counted.
    commits.append([999, 1, start - S, start - S + 1])
    ids[999] = (start - S) / 1e6 + 500
    steal = [(start - S, 0.0), (start + S, 0.1), (start + 2 * S, 0.9)]
    out = latency._by_second(commits, ids, start, steal, target_ms=50.0, reader_ts=reader_ts)
    assert out["seconds"] == 2 and out["seconds_over_target"] == 1
    worst = out["worst"][0]
    assert worst["second"] == 1
    assert worst["p99_ms"] == 80.0 and worst["to_reader_p99_ms"] == 70.0
    assert out["steal_cores_in_slow_seconds"] > out["steal_cores_in_other_seconds"]


def test_the_window_with_the_least_host_steal_counts_whatever_its_latency():
    windows = [
        {"window": 1, "host_steal_cores": 0.4, "p99_ms": 20.0},
        {"window": 2, "host_steal_cores": 0.05, "p99_ms": 90.0},
        {"window": 3, "host_steal_cores": 0.01, "error": "rows missing"},
    ]
    assert latency._choose_window(windows)["window"] == 2
    assert latency._choose_window(windows[:1])["window"] == 1


def test_transaction_markers_are_read_from_the_log_segment(tmp_path):
    """Batches laid out by aiokafka's own builder (a control batch: its attributes'
    control bit, the key version 0 and type 1 = commit, 0 = abort)."""
    import struct

    from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy
    from kafka_tools import transaction_markers, visible_at

    def batch(base: int, ts: int, key: bytes, control: bool = False) -> bytes:
        builder = _DefaultRecordBatchBuilderPy(2, 0, 1, 7, 0, 0, 1 << 20)
        builder.append(0, ts, key, b"{}" if not control else b"\x00\x00\x00\x00", [])
        data = builder.build()
        struct.pack_into(">q", data, 0, base)
        if control:
            attributes = struct.unpack_from(">h", data, 21)[0] | 0x20
            struct.pack_into(">h", data, 21, attributes)
        return bytes(data)

    commit, abort = b"\x00\x00\x00\x01", b"\x00\x00\x00\x00"
    folder = tmp_path / "t-0"
    folder.mkdir()
    segment = (
        batch(0, 1000, b"a")
        + batch(1, 1005, commit, control=True)
        + batch(2, 1010, b"b")
        + batch(3, 1020, abort, control=True)
        + batch(4, 1030, b"c")
    )
    (folder / "00000000000000000000.log").write_bytes(segment + batch(5, 1040, b"d")[:30])
    markers = transaction_markers([tmp_path], "t")
    assert markers == [(1, 1005, 1), (3, 1020, 0)]
    assert visible_at(markers, 0) == 1005
    assert visible_at(markers, 2) is None  # aborted
    assert visible_at(markers, 4) is None  # not committed yet
    assert transaction_markers([tmp_path], "other") == []


# -- the initial-snapshot phase (benchmarks/snapshot.py) ---------------------------------


def _options(tmp_path, **changes):
    import run

    env = {
        "CDCD_TEST_KAFKA_BOOTSTRAP": "127.0.0.1:9",
        "CDCD_TEST_PG_DSN": "postgresql://u:p@127.0.0.1:1/db",
        "CDCD_TEST_MYSQL_URL": "mysql://root:p@127.0.0.1:2/",
    }
    argv = ["--out", str(tmp_path / "latest.json"), *changes.pop("argv", [])]
    opts = run._options(run._parser().parse_args(argv), ["postgres", "mysql"], env)
    for key, value in changes.items():
        setattr(opts, key, value)
    return opts


def test_snapshot_rows_by_mode_and_option(tmp_path):
    assert _options(tmp_path).snapshot_rows == 1_000_000
    assert _options(tmp_path, argv=["--quick"]).snapshot_rows == 20_000
    assert _options(tmp_path, argv=["--quick", "--snapshot-rows", "0"]).snapshot_rows == 0
    opts = _options(tmp_path, argv=["--snapshot-threads", "2", "--skip", "snapshot,c"])
    assert opts.snapshot_threads == 2 and "snapshot" in opts.skip


def test_the_snapshot_table_is_loaded_in_statements_of_its_batch():
    import load

    gen = load.snapshot_table(250_000)
    assert (gen.rows, gen.events, gen.deletes, gen.table) == (
        250_000,
        250_000,
        0,
        "snapshot_orders",
    )
    assert gen.spans() == [(1, 100_000), (100_001, 200_000), (200_001, 250_000)]
    big = load.BigTransaction(1000)
    assert big.spans() == [(load.BIG_TX_FIRST_ID, load.BIG_TX_FIRST_ID + 999)]
    assert big.describe()["table"] == "bench.orders"
    assert "bench.snapshot_orders" in load._pg_insert_select(gen.table, 1, 10)
    assert "bench.snapshot_orders" in load._mysql_insert_select(gen.table, 1, 10)


def test_cdcd_config_of_each_phase_validates_as_cdcd_reads_it(tmp_path):
    """The generated TOML is read by cdcd's own configuration loader: the snapshot phase
    with [snapshot] mode = "initial", every other phase with "no_data"."""
    import readers
    import snapshot
    from server_postgres import PostgresBench

    from cdcd.config import load_config

    opts = _options(tmp_path, snapshot_threads=2)
    bench = PostgresBench(opts)
    source = bench.cdcd_snapshot_source("snapcdcd", "bench.snapshot_orders")
    section = snapshot.cdcd_snapshot_section(opts)
    for name, config in (
        ("snap", readers.cdcd_config(opts, "snap", source, "p", snapshot=section)),
        ("catchup", readers.cdcd_config(opts, "catchup", bench.cdcd_source("c", "s"), "p")),
    ):
        path = tmp_path / f"{name}.toml"
        readers.write_toml(path, config)
        loaded = load_config(path)
        if name == "snap":
            assert loaded.snapshot.mode == "initial" and loaded.snapshot.max_threads == 2
            assert loaded.snapshot.chunk_size == 1024  # cdcd's default, not set
            assert loaded.source.create_slot and loaded.source.publication_name == "bench_snap_pub"
        else:
            assert loaded.snapshot.mode == "no_data"
    # The reader creates its slot; the harness drops it at cleanup.
    assert bench.slots == ["bench_snapcdcd_" + opts.run_id]


def test_a_cdcd_without_snapshot_keys(tmp_path, monkeypatch):
    import readers

    opts = _options(tmp_path)
    source = {"kind": "mysql", "dsn": "mysql://root@h:1/", "tables": ["bench.t"]}
    known = {**readers.cdcd_fields(), "snapshot": {"mode"}}
    monkeypatch.setattr(readers, "cdcd_fields", lambda: known)
    config = readers.cdcd_config(
        opts, "n", source, "p", snapshot={"mode": "initial", "max_threads": 2}
    )
    assert config["snapshot"] == {"mode": "initial"}  # a key it does not know is left out
    known["snapshot"] = set()
    assert "snapshot" not in readers.cdcd_config(opts, "n", source, "p")
    try:
        readers.cdcd_config(opts, "n", source, "p", snapshot={"mode": "initial"})
    except RuntimeError as exc:
        assert "takes no initial snapshot" in str(exc)
    else:
        raise AssertionError("a cdcd without [snapshot] mode must be refused")


def test_debezium_snapshot_properties(tmp_path):
    from server_mysql import MysqlBench
    from server_postgres import PostgresBench

    opts = _options(tmp_path)
    pg = PostgresBench(opts).debezium_snapshot_props(
        "snapdbz", "bench.snapshot_orders", "p", tmp_path
    )
    assert pg["snapshot.mode"] == "initial" and pg["table.include.list"] == "bench.snapshot_orders"
    assert pg["publication.name"] == "bench_snap_pub" and pg["slot.name"].startswith(
        "bench_snapdbz_"
    )
    my = MysqlBench(opts, "mysql").debezium_snapshot_props(
        "snapdbz", "bench.snapshot_orders", "p", tmp_path
    )
    assert my["snapshot.mode"] == "initial" and my["table.include.list"] == "bench.snapshot_orders"
    assert not any(key.startswith(("bench.seed", "snapshot.mode.configuration")) for key in my)
    # Defaults otherwise: no thread count, no fetch size.
    assert not any(
        key.startswith(("snapshot.max.threads", "snapshot.fetch.size")) for key in pg | my
    )


def test_snapshot_rows_per_s_only_when_every_record_is_a_read():
    import snapshot

    done = {"wall_events_per_s": 5000.0, "row_events": 1000, "ops": {"r": 1000}}
    snapshot.snapshot_figures(done, 1000)
    assert done["rows_per_s"] == 5000.0 and "warning" not in done
    mixed = {"wall_events_per_s": 5000.0, "row_events": 1000, "ops": {"r": 990, "c": 10}}
    snapshot.snapshot_figures(mixed, 1000)
    assert "rows_per_s" not in mixed and "990 r records" in mixed["warning"]
    failed = {"error": "stalled", "wall_events_per_s": 10.0, "ops": {"r": 5}}
    snapshot.snapshot_figures(failed, 1000)
    assert "rows_per_s" not in failed and "warning" not in failed


def test_snapshot_headline_ratio_targets_and_table(tmp_path):
    import report

    def source(rows):
        return {
            "readers": {},
            "errors": {},
            "snapshot": {
                "rows": rows,
                "readers": {
                    "cdcd": {
                        "rows_per_s": 30_000.0,
                        "peak_rss_mb": 90.0,
                        "cpu_s": 40.0,
                        "wall_s": 33.3,
                    },
                    "debezium": {"rows_per_s": 12_000.0, "peak_rss_mb": 700.0, "cpu_s": 90.0},
                },
            },
        }

    opts = _options(tmp_path)
    full, small = source(1_000_000), source(20_000)
    report.headline("postgres", full, opts)
    report.headline("mysql", small, opts)
    assert full["ratios"]["snapshot_cdcd_vs_debezium"] == 2.5
    assert full["cdcd_snapshot_peak_rss_mb"] == 90.0 and full["debezium_snapshot_cpu_s"] == 90.0
    assert full["targets"]["snapshot cdcd_vs_debezium >= 2"] == "PASS"
    assert full["targets"]["snapshot cdcd peak_rss_mb <= 150"] == "PASS"
    assert small["targets"]["snapshot cdcd_vs_debezium >= 2"].endswith("not comparable)")
    result = {
        "run_id": "r",
        "mode": "full",
        "workload": {"n": 1000, "events": 1300},
        "machine": {"cpus": 2, "loadavg": [0.1]},
        "loadavg_end": [0.2],
        "settings": {},
        "sources": {"postgres": full, "mysql": small},
    }
    table = report.report(result)
    assert "initial snapshot of a table" in table
    assert any(line.startswith("postgres") and "30,000" in line for line in table.splitlines())
    assert "initial snapshot of 1,000,000 rows: cdcd/Debezium 2.50x" in table


def test_the_transforms_row_configuration_is_read_back_whole(tmp_path):
    """The transforms row's sections (Debezium's dotted names quoted in the TOML) give
    cdcd's column options, the outbox router and the flattening."""
    import catchup
    import readers
    from server_postgres import PostgresBench

    from cdcd.config import load_config
    from cdcd.transforms import build_transforms

    opts = _options(tmp_path)
    source = PostgresBench(opts).cdcd_source("tf", "s")
    source["tables"] = ["bench\\.(orders|outbox)"]
    config = readers.cdcd_config(opts, "tf", source, "p")
    config.update(catchup.TRANSFORMS)
    path = tmp_path / "tf.toml"
    readers.write_toml(path, config)
    loaded = load_config(path)
    assert loaded.flatten is not None
    assert loaded.flatten.delete_tombstone_handling_mode == "rewrite-with-tombstone"
    assert loaded.shaping is not None and len(loaded.shaping.column_rules) == 3
    kinds = [type(t).__name__ for t in build_transforms(loaded)]
    assert kinds == [
        "ColumnShaper",
        "TableTopics",
        "DeleteTombstones",
        "OutboxRouter",
        "ExtractNewRecordState",
    ]
