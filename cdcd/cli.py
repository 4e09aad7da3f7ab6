"""The command line: the only place that parses arguments."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from cdcd import __version__
from cdcd.config import Config, load_config
from cdcd.envelope import EnvelopeEncoder
from cdcd.errors import CdcdError
from cdcd.log import setup_logging
from cdcd.pipeline import Pipeline
from cdcd.sinks import build_sink
from cdcd.sources import build_source

T = TypeVar("T")

config_option = click.option(
    "--config",
    "-c",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    envvar="CDCD_CONFIG",
    help="TOML configuration file (see conf/cdcd.example.toml).",
)


def _run_async(make: Callable[[], Awaitable[T]]) -> T:
    try:
        import uvloop

        loop_factory: Any = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(make())  # type: ignore[arg-type]


def _fail(exc: CdcdError) -> None:
    click.echo(f"cdcd: error: {exc}", err=True)
    sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cdcd")
def main() -> None:
    """cdcd: change data capture from PostgreSQL and MySQL/MariaDB to Kafka."""


@main.command()
@config_option
def run(config_path: str) -> None:
    """Stream changes from the source to the sink until SIGTERM or SIGINT."""
    try:
        config = load_config(config_path)
        log = setup_logging(config.log.level, config.log.format).bind(name=config.name)
        stats = _run_async(lambda: _run(config, log))
    except CdcdError as exc:
        _fail(exc)
    log.info(
        "stopped",
        events=stats.events,
        transactions=stats.transactions,
        position=str(stats.acked_position) if stats.acked_position else None,
    )


async def _run(config: Config, log: Any) -> Any:
    source = build_source(config, log=log)
    sink = build_sink(config, log=log)
    encoder = EnvelopeEncoder(
        config.sink.topic_prefix,
        source.connector,
        tombstones_on_delete=config.sink.tombstones_on_delete,
        skipped_operations=frozenset(config.pipeline.skipped_operations),
    )
    pipeline = Pipeline(
        source,
        sink,
        encoder,
        log=log,
        max_batch_events=config.pipeline.max_batch_events,
        max_in_flight_batches=config.pipeline.max_in_flight_batches,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, pipeline.stop)
    try:
        await sink.start()  # first: no slot is created for a daemon that cannot deliver
        await source.prepare()
        log.info("started", source=config.source.kind, sink=config.sink.kind, version=__version__)
        return await pipeline.run()
    finally:
        await source.close()
        await sink.close()


@main.command()
@config_option
def check(config_path: str) -> None:
    """Check the source for what would stop or spoil streaming, and print the fixes."""
    try:
        config = load_config(config_path)
        setup_logging("warning", config.log.format)
        source = build_source(config)

        async def _check() -> Any:
            try:
                return await source.check()
            finally:
                await source.close()

        problems = _run_async(_check)
    except CdcdError as exc:
        _fail(exc)
    if not problems:
        click.echo(f"{config.source.kind} source: OK, ready to stream")
        return
    for problem in problems:
        label = "ERROR" if problem.fatal else "WARNING"
        click.echo(f"{label}: {problem}")
    fatal = sum(p.fatal for p in problems)
    click.echo(f"{fatal} error(s), {len(problems) - fatal} warning(s)")
    sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
