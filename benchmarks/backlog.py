"""Phase 1 of a source: every reader's start point, then the backlog of ``load.py``, the
server settled, the run's Kafka topics created; and the ``SourceRun`` every later phase
of that source works in."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import load
from harness import Options, log
from kafka_tools import create_topics
from server_mysql import MysqlBench
from server_postgres import PostgresBench

Bench = PostgresBench | MysqlBench

# Reader roles with a topic of their own, besides the catch-up rounds' (cdcd..., dbz...):
# the profile, cdcd's and Debezium's latency, the big transaction, cdcd with transforms.
OTHER_TOPIC_ROLES = ("prof", "lat", "dbzlat", "big", "tf")


def make_bench(opts: Options, name: str) -> Bench:
    """The server of a source named in ``--sources``."""
    return PostgresBench(opts) if name == "postgres" else MysqlBench(opts, name)


@dataclass
class SourceRun:
    """One source's run: its server, work directory, topics (by reader role) and the
    figures so far (``out``: the JSON's ``sources.<name>``)."""

    opts: Options
    bench: Bench
    workload: load.Workload
    workdir: Path
    out: dict[str, Any]
    prefixes: dict[str, str] = field(default_factory=dict)
    topics: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.bench.name

    @property
    def readers(self) -> dict[str, Any]:
        return self.out["readers"]

    @property
    def cdcd_roles(self) -> list[str]:
        """One start point per catch-up: cdcd and Debezium take turns, round after round."""
        return ["cdcd", *(f"cdcd{r}" for r in range(2, self.opts.rounds + 1))]

    @property
    def dbz_roles(self) -> list[str]:
        return ["dbz", *(f"dbz{r}" for r in range(2, self.opts.rounds + 1))]

    def failed(self, what: str, exc: BaseException) -> None:
        """Record a phase that raised (the run goes on); call it from the ``except``."""
        log(f"{self.name}: {what} failed: {exc}")
        self.out["errors"][what] = str(exc) or exc.__class__.__name__
        if not isinstance(exc, RuntimeError):
            self.out["errors"][what] += " | " + traceback.format_exc(limit=3).replace("\n", " ")

    def note_error(self, what: str, result: dict[str, Any]) -> None:
        """A phase's result that carries an error: listed under ``errors`` too."""
        if "error" in result:
            self.out["errors"][what] = result["error"]


async def load_backlog(opts: Options, bench: Bench) -> SourceRun:
    """Start points first (one per reader), then the backlog, then the server settled
    and the topics created: every reader finds the same backlog and a server at rest."""
    name = bench.name
    workdir = opts.work / name
    workdir.mkdir(parents=True, exist_ok=True)
    workload = load.Workload(opts.n)
    out: dict[str, Any] = {
        "events": workload.events,
        "workload": workload.describe(),
        "readers": {},
        "errors": {},
    }
    run = SourceRun(opts, bench, workload, workdir, out)
    roles = ["c", *run.cdcd_roles, *run.dbz_roles, "prof", "tf"]
    log(f"{name}: preparing (start points for {', '.join(roles)}) and loading N={opts.n} ...")
    out["start"] = bench.prepare(roles)
    out["load"] = load.load_backlog(bench.db, bench.dsn, workload)
    out["end"] = bench.end_position()
    log(f"{name}: backlog of {workload.events} events loaded in {out['load']['load_s']} s")
    # Every reader then finds the server at rest (not purging or vacuuming the backlog).
    out["settle_after_load"] = bench.settle()
    for role in (*run.cdcd_roles, *run.dbz_roles, *OTHER_TOPIC_ROLES):
        run.prefixes[role] = f"{opts.topic_root}{name}-{role}"
        run.topics[role] = f"{run.prefixes[role]}.bench.orders"
    await create_topics(opts.kafka, list(run.topics.values()))
    return run
