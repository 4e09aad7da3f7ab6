"""The command line: the only place that parses arguments."""

from __future__ import annotations

import asyncio
import datetime
import faulthandler
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
import orjson

from cdcd import __version__
from cdcd.config import Config, load_config
from cdcd.errors import CdcdError, ConfigError, PositionLostError
from cdcd.log import setup_logging
from cdcd.offsets import SeekableSource, StoredOffset, parse_position
from cdcd.positions import Position
from cdcd.runtime.daemon import Daemon
from cdcd.sinks import check_sink
from cdcd.sources import Problem, build_source
from cdcd.topics import TableTopic, TopicNaming, shared_topics, table_topics
from cdcd.topics import describe as describe_topics

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
    # A hung daemon killed by systemd's watchdog (SIGABRT) leaves every thread's stack
    # on standard error: the journal says where the event loop was stuck.
    faulthandler.enable()
    try:
        config = load_config(config_path)
        log = setup_logging(config.log.level, config.log.format).bind(name=config.name)
        _run_async(lambda: Daemon(config, log).run())
    except CdcdError as exc:
        _fail(exc)


@main.command()
@config_option
@click.option("--strict", is_flag=True, help="Warnings count as errors: exit code 1 on any.")
def check(config_path: str, strict: bool) -> None:
    """Check the source and the sink (Kafka) for what would stop or spoil streaming, and
    print the fixes. Exit code 1 on an error (with --strict, on a warning too)."""
    try:
        config = load_config(config_path)
        setup_logging("warning", config.log.format)
        (source_part, topics), sink_part = _run_async(lambda: _check_all(config))
    except CdcdError as exc:
        _fail(exc)
    if topics is not None:
        click.echo("\n".join(describe_topics(topics)))
    reports = [source_part, sink_part]
    for part, problems in reports:
        if problems is None:
            click.echo(f"{part}: nothing to check")
            continue
        click.echo(f"{part}: OK" if not problems else f"{part}:")
        for problem in problems:
            click.echo(f"{'ERROR' if problem.fatal else 'WARNING'}: {problem}")
    found = [problem for _part, problems in reports for problem in problems or ()]
    errors = sum(problem.fatal for problem in found)
    # Tables sharing a topic: warned about in the map above.
    warnings = len(found) - errors + len(shared_topics(topics or []))
    if not errors and not warnings:
        click.echo("ready to stream")
        return
    verdict = "not ready to stream" if errors or strict else "ready to stream"
    click.echo(f"{errors} error(s), {warnings} warning(s): {verdict}")
    if errors or strict:
        sys.exit(1)


# What was checked, and its findings (None: nothing to check).
_Part = tuple[str, list[Problem] | None]


async def _check_all(config: Config) -> tuple[tuple[_Part, list[TableTopic] | None], _Part]:
    """The findings about the source, its tables' topics (None: unknown), and the findings
    about the sink."""
    (source_problems, topics), sink_problems = await asyncio.gather(
        _check_source(config), check_sink(config)
    )
    address = config.sink.address()
    where = f" at {address}" if address and sink_problems is not None else ""
    return (
        ((f"{config.source.kind} source", source_problems), topics),
        (f"{config.sink.kind} sink{where}", sink_problems),
    )


async def _check_source(config: Config) -> tuple[list[Problem], list[TableTopic] | None]:
    # A source that cannot be checked (unreachable...) is a finding: the sink is checked too.
    try:
        source = build_source(config)
    except CdcdError as exc:
        return [Problem(str(exc), "")], None
    try:
        problems = await source.check()
        naming = TopicNaming(config.sink.topic_prefix)
        try:
            return problems, table_topics(naming, await source.captured_tables())
        except CdcdError as exc:
            return [*problems, Problem(str(exc), "")], None
    except CdcdError as exc:
        return [Problem(str(exc), "")], None
    finally:
        await source.close()


# -- offsets --------------------------------------------------------------------------


@main.group()
def offsets() -> None:
    """Show or change where the daemon resumes (changes are refused while it runs)."""


def _describe(offset: StoredOffset | None) -> str:
    if offset is None:
        return "none stored"
    return f"{offset.position}  {orjson.dumps(offset.position.to_dict()).decode()}"


@offsets.command("show")
@config_option
def offsets_show(config_path: str) -> None:
    """Print the stored offset and whether the daemon runs."""
    from cdcd.sinks.kafka.offsets import offsets_status

    try:
        config = load_config(config_path)
        setup_logging("warning", config.log.format)
        status = _run_async(lambda: offsets_status(config))
    except CdcdError as exc:
        _fail(exc)
    running = ", ".join(map(str, status.members))
    click.echo(f"daemon:   {config.name} ({'running: ' + running if running else 'not running'})")
    click.echo(f"offsets:  topic {status.topic}, key {status.key.decode()}")
    click.echo(f"position: {_describe(status.offset)}")
    if status.offset is not None:
        if status.offset.transaction is not None:
            click.echo(f"inside:   transaction {status.offset.transaction.get('id')}")
        written = datetime.datetime.fromtimestamp(status.offset.ts_ms / 1000, datetime.UTC)
        click.echo(f"written:  {written.isoformat(timespec='milliseconds').replace('+00:00', 'Z')}")
    else:
        click.echo("          (the daemon starts where the source's own bookkeeping says)")


async def _source_positions(
    config: Config, which: str | None, given: Position | None
) -> tuple[Any, Any]:
    """(the source's ``which`` position, or ``given`` once the source has checked that it
    can stream from it exactly; its earliest position or None)."""
    source = build_source(config)
    try:
        if not callable(getattr(source, "earliest_position", None)):
            if which is not None:
                raise CdcdError(
                    f"the {config.source.kind} source cannot tell its {which} position; "
                    "use cdcd offsets set --position"
                )
            return given, None
        seekable: SeekableSource = source  # type: ignore[assignment]
        earliest = await seekable.earliest_position()
        if given is not None:
            await seekable.check_position(given)
            return given, earliest
        if which == "latest":
            return await seekable.latest_position(), earliest
        return earliest, earliest
    finally:
        await source.close()


async def _prepare_reset(config: Config, position: Position) -> Position:
    """The position ``offsets reset`` stores: the one shown, unless the source must first
    make a place to stream from (PostgreSQL: a slot created now starts now)."""
    source = build_source(config)
    try:
        prepare_reset = getattr(source, "prepare_reset", None)
        return await prepare_reset(position) if callable(prepare_reset) else position
    finally:
        await source.close()


def _change_offset(config_path: str, yes: bool, position_text: str | None, to: str | None) -> None:
    from cdcd.sinks.kafka.membership import refuse_if_running
    from cdcd.sinks.kafka.offsets import offsets_status, store_offset

    try:
        config = load_config(config_path)
        setup_logging("warning", config.log.format)
        status = _run_async(lambda: offsets_status(config))
        refuse_if_running(config, status.members)
        which = {"beginning": "earliest", "end": "latest"}.get(to or "", to)
        given = None
        if position_text is not None:
            try:
                given = parse_position(position_text, config.source.kind)
            except ValueError as exc:
                raise ConfigError(f"--position: {exc}") from None
        try:
            position, earliest = _run_async(lambda: _source_positions(config, which, given))
        except PositionLostError as exc:
            raise PositionLostError(f"--position: {exc}") from None
        new = StoredOffset(position)
        click.echo(f"old position: {_describe(status.offset)}")
        click.echo(f"new position: {_describe(new)}")
        if earliest is not None:
            click.echo(f"(the oldest position the source still has: {earliest})")
        if not yes and not _confirm(f"Store the new position for cdcd {config.name!r}?"):
            click.echo("nothing changed")
            sys.exit(1)
        if which is not None:
            position = _run_async(lambda: _prepare_reset(config, position))
            new = StoredOffset(position)
        _run_async(lambda: store_offset(config, new))
    except CdcdError as exc:
        _fail(exc)
    click.echo(f"stored: {status.offset.position if status.offset else 'none'} -> {position}")


def _confirm(question: str) -> bool:
    """Ask; an answer piped in counts, but no answer at all without a terminal is an error."""
    try:
        return click.confirm(question)
    except click.Abort:  # end of input, or Ctrl-C
        click.echo()  # end the prompt's line
        if sys.stdin.isatty():
            return False
        raise CdcdError(
            "no answer to the confirmation: standard input is not a terminal; "
            "--yes is needed to confirm without one (nothing changed)"
        ) from None


@offsets.command("set")
@config_option
@click.option(
    "--position",
    "position_text",
    required=True,
    help="JSON as `offsets show` prints it, or an LSN (16/B374D848[#index]), a GTID set.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def offsets_set(config_path: str, position_text: str, yes: bool) -> None:
    """Store a position to resume from (the daemon must be stopped)."""
    _change_offset(config_path, yes, position_text, None)


@offsets.command("reset")
@config_option
@click.option(
    "--to",
    "to",
    required=True,
    type=click.Choice(["earliest", "latest", "beginning", "end"]),
    help="earliest/beginning: the oldest position the source still has; latest/end: now.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def offsets_reset(config_path: str, to: str, yes: bool) -> None:
    """Store the source's current beginning or end (the daemon must be stopped)."""
    _change_offset(config_path, yes, None, to)


@main.command()
@config_option
@click.option(
    "--table",
    "-t",
    "tables",
    multiple=True,
    help="A table to read (schema.table / database.table; a regular expression, as "
    "Debezium's data-collections). Repeat for more.",
)
@click.option("--where", help="An SQL condition on the tables' columns (additional-conditions).")
@click.option("--blocking", is_flag=True, help="Debezium's blocking snapshot type.")
@click.option("--no-wait", is_flag=True, help="Send the signal and return at once.")
@click.option("--status", is_flag=True, help="Show the running snapshot and its progress.")
@click.option("--pause", "action", flag_value="pause-snapshot", help="Pause the running snapshot.")
@click.option("--resume", "action", flag_value="resume-snapshot", help="Resume a paused snapshot.")
@click.option("--stop", "action", flag_value="stop-snapshot", help="Stop the running snapshot.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for an answer.")
def snapshot(
    config_path: str,
    tables: tuple[str, ...],
    where: str | None,
    blocking: bool,
    no_wait: bool,
    status: bool,
    action: str | None,
    timeout: float,
) -> None:
    """Read tables again while the daemon streams (an incremental snapshot), through
    Kafka, wherever the daemon runs; show its progress until it is done. Exit code 0 when
    done, 1 when the daemon refuses, aborts, does not answer or does not run."""
    from cdcd.snapshot.command import run_snapshot_command

    try:
        config = load_config(config_path)
        if not status and action is None and not tables:
            raise ConfigError("name the tables to read: --table schema.table (or --status)")
        code = _run_async(
            lambda: run_snapshot_command(
                config,
                tables=tables,
                where=where,
                blocking=blocking,
                wait=not no_wait,
                status=status,
                action=action,
                timeout_s=timeout,
            )
        )
    except CdcdError as exc:
        _fail(exc)
    sys.exit(code)


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per instance, a list.")
def status(config_path: str, as_json: bool) -> None:
    """Every instance of the daemon (an active/standby pair), from the heartbeats in Kafka,
    wherever it runs. Exit code 1 when no instance is active."""
    from cdcd.runtime.leadership import ACTIVE, instances
    from cdcd.sinks.kafka.status import read_instances

    try:
        config = load_config(config_path)
        setup_logging("warning", config.log.format)
        beats = _run_async(lambda: read_instances(config))
    except CdcdError as exc:
        _fail(exc)
    now_ms = int(datetime.datetime.now().timestamp() * 1000)
    rows = instances(beats, config.name, now_ms, config.ha.lease_ms)
    if as_json:
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
    else:
        for row in rows:
            lag = f"{row['lag_ms']} ms behind" if row["lag_ms"] is not None else "lag unknown"
            click.echo(
                f"{row['instance']}  {row['role']:<8} epoch {row['epoch']}  "
                f"{row['server'] or '-'}  at {row['position'] or '-'}  {lag}  "
                f"heartbeat {row['age_ms'] / 1000:.1f} s ago"
            )
        if not rows:
            click.echo(f"no instance of {config.name!r} was heard from in the last minute")
    sys.exit(0 if any(row["role"] == ACTIVE for row in rows) else 1)


if __name__ == "__main__":  # pragma: no cover
    main()
