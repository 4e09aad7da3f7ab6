"""The differences from Debezium that are known, each with its reason: per source, the
case (``cases.py``) whose table differs, or ``field:<field>`` for a field that differs in
every table. docs/compatibility.md shows the same list
(test_known.py checks it does). A difference not listed here fails the harness, and so
does a listed one that no longer occurs (then it was fixed: remove it)."""

from __future__ import annotations

KNOWN: dict[str, dict[str, str]] = {
    "postgres": {
        "start": "source.sequence of the first transaction after a fresh start: Debezium "
        "writes no previous commit LSN (`[null, lsn]`), cdcd the slot's position",
        "int4_array": "a multi-dimensional array: Debezium writes each inner array as null "
        "(its schema is an array of int32), cdcd the nested arrays",
        "numeric_nan": "numeric NaN under decimal.handling.mode=precise: Debezium writes null "
        "(the value is lost), cdcd stops with one error line naming "
        "[encoding] decimal_handling_mode (string or double encode it)",
        "numeric_inf": "numeric ±Infinity under precise: Debezium writes null, cdcd stops "
        "(as for NaN)",
        "numeric_p_nan": "numeric(10,2) NaN under precise: Debezium writes null, cdcd stops "
        "(as for NaN)",
        "domain_numeric": "a domain over numeric(8,2): Debezium writes a Decimal of the base "
        "type's scale; pgoutput gives the column no typmod and cdcd does not look up the "
        "domain's (pg_type.typtypmod), so it writes a VariableScaleDecimal",
        **{
            geometric: f"{geometric}: Debezium leaves the column out (a type it does not "
            "map, include.unknown.datatypes=false); cdcd writes PostgreSQL's text"
            for geometric in ("line", "lseg", "box", "path", "polygon", "circle")
        },
    },
    "mariadb": {},
    "mysql": {
        **{
            f"field:source.{ts}": "MySQL 8's source.ts_ms/ts_us/ts_ns: Debezium takes the "
            "commit time in microseconds from the GTID event (original_commit_timestamp), "
            "cdcd the event header's whole seconds"
            for ts in ("ts_ms", "ts_us", "ts_ns")
        },
    },
}
