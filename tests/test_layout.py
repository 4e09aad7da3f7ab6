"""The boundaries of the layout (docs/architecture.md): the core knows no database driver
and no Kafka client; sources know no Kafka and sinks no database; config.py names no
kind (each brings its model); only cli.py parses arguments; modules and functions stay
small enough to read."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "cdcd"
CORE = [
    "cdcd.events",
    "cdcd.positions",
    "cdcd.checkpoint",
    "cdcd.offsets",
    "cdcd.envelope",
    "cdcd.transforms.builtin",
    "cdcd.serialization",
    "cdcd.encoder",
    "cdcd.topics",
    "cdcd.config",
    "cdcd.snapshot",
    "cdcd.runtime.context",
    "cdcd.runtime.pipeline",
    "cdcd.runtime.coordinator",
]
FORBIDDEN = ["psycopg", "pymysql", "pymysqlreplication", "aiokafka"]
KINDS = ("postgres", "mysql", "kafka", "stdout")
MAX_MODULE_LINES = 520
MAX_FUNCTION_LINES = 85


def _imported(modules: list[str], roots: list[str]) -> list[str]:
    code = (
        "import sys\n"
        + "".join(f"import {module}\n" for module in modules)
        + f"print(sorted(m for m in sys.modules if m.split('.')[0] in {roots!r}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return eval(result.stdout)  # noqa: S307 - a list printed by the line above


def test_core_imports_no_driver_and_no_kafka_client():
    assert _imported(CORE, FORBIDDEN) == []


def test_sources_know_no_kafka_and_sinks_no_database():
    for package, forbidden in (
        ("cdcd.sources.postgres.source", ["aiokafka", "pymysql"]),
        ("cdcd.sources.mysql.source", ["aiokafka", "psycopg"]),
        ("cdcd.sinks.kafka.sink", ["psycopg", "pymysql", "pymysqlreplication"]),
        ("cdcd.sinks.stdout.sink", FORBIDDEN),
    ):
        assert _imported([package], forbidden) == [], package


def test_reading_the_configuration_loads_no_driver():
    # Each kind's config.py sits beside its code: finding them must stay light.
    assert _imported(["cdcd.config", "cdcd.sources", "cdcd.sinks"], FORBIDDEN) == []


def test_config_names_no_kind():
    """A source or sink is added by adding its folder: config.py lists no kind by hand."""
    tree = ast.parse((PACKAGE / "config.py").read_text())
    named = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in KINDS
    ]
    assert named == []


def test_only_the_cli_parses_arguments():
    parsers = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(name.split(".")[0] in ("click", "argparse") for name in names):
                parsers.append(path.relative_to(ROOT).as_posix())
    assert sorted(set(parsers)) == ["cdcd/cli.py"]


def test_modules_and_functions_stay_small():
    long_modules, long_functions = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        where = path.relative_to(ROOT).as_posix()
        if text.count("\n") > MAX_MODULE_LINES:
            long_modules.append(f"{where}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{where}:{node.lineno} {node.name}: {length} lines")
    assert long_modules == [], "split these modules"
    assert long_functions == [], "split these functions"
