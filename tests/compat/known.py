"""The differences from Debezium that are known, each with its reason: per source, the
case (``cases.py``) whose table differs. docs/compatibility.md shows the same list
(test_known.py checks it does). A difference not listed here fails the harness, and so
does a listed one that no longer occurs (then it was fixed: remove it)."""

from __future__ import annotations

KNOWN: dict[str, dict[str, str]] = {
    "postgres": {},
    "mariadb": {},
    "mysql": {},
}
