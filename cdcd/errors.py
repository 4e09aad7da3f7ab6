"""The exception hierarchy: every error a user can see says what to fix."""

from __future__ import annotations


class CdcdError(Exception):
    """Base of every error cdcd raises on purpose; its message is shown to the user as is."""


class ConfigError(CdcdError):
    """The configuration file is missing, unreadable or invalid (the message names the key)."""


class SourceError(CdcdError):
    """The source database cannot be read: unreachable, misconfigured or missing a privilege."""


class SinkError(CdcdError):
    """The sink (Kafka) cannot be written to."""


class FencedError(SinkError):
    """Another instance took over the transactional id; this one must stop at once."""


class DecodeError(SourceError):
    """A replication message could not be decoded; the stream stops rather than skip data."""


class SourceUnavailableError(SourceError):
    """The source's connection was lost or refused, which may pass (a server restarting,
    a killed session, a network cut).

    While streaming, the daemon then starts over from its last committed offset; at the
    first start it stops, as for any other error.
    """


class SourceDisplacedError(SourceError):
    """Another reader took this one's place on the source: a MySQL/MariaDB binlog reader
    with the same server id connected (the server ends the older dump at once). Starting
    over would displace that one in turn, so the daemon stops (an active/standby pair:
    the displaced instance is no longer the reader)."""


class PositionLostError(SourceError):
    """The stored position cannot be continued from exactly: what it needs is gone from
    the server (a dropped replication slot, purged binlogs, a reset GTID history), or
    the server never had it. Streaming on from elsewhere would skip changes, so the
    daemon stops; the message says what is gone, between which positions, and how to
    go on knowingly."""
