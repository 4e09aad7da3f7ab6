"""What a pymysql error means for cdcd, as an error that says what to fix.

A lost or refused connection may pass by itself (a server restarting, a killed session,
a network cut): it becomes ``SourceUnavailableError``, and a daemon that has streamed
already starts over from its last committed offset. Anything else (a refused login, a
missing privilege, a purged binlog, a certificate that is not trusted) will not pass
without a fix and stops the daemon.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from cdcd.errors import SourceDisplacedError, SourceError, SourceUnavailableError

if TYPE_CHECKING:
    from cdcd.sources.mysql.config import MysqlSourceConfig

# Client-side codes (CR_*) and server codes that mean the connection, not the request,
# failed: the same request on a new connection may succeed.
CONNECTION_LOST_CODES = frozenset(
    {
        2002,  # CR_CONNECTION_ERROR (socket)
        2003,  # CR_CONN_HOST_ERROR: refused, unreachable, timed out
        2006,  # CR_SERVER_GONE_ERROR
        2013,  # CR_SERVER_LOST
        2055,  # CR_SERVER_LOST_EXTENDED
        1040,  # ER_CON_COUNT_ERROR: too many connections
        1053,  # ER_SERVER_SHUTDOWN
        1317,  # ER_QUERY_INTERRUPTED: KILL QUERY of the dump thread
        1927,  # ER_CONNECTION_KILLED (MariaDB): KILL of the session
        3169,  # ER_SESSION_WAS_KILLED (MySQL)
    }
)
_SSL_CONNECTION_ERROR = 2026  # CR_SSL_CONNECTION_ERROR: "SSL is required but the server ..."
_INSECURE_TRANSPORT = 3159  # ER_SECURE_TRANSPORT_REQUIRED (MySQL)
_ACCESS_DENIED = 1045
_NO_REPLICATION_PRIVILEGE = 1227
_BINLOG_UNREADABLE = 1236  # ER_MASTER_FATAL_ERROR_READING_BINLOG: purged, or not a position
_SLAVE_SAME_ID = 4052  # MariaDB: a newer dump with this server_id ended this one
# MySQL ends the older dump with 1236 and this text (8.0: "... server_uuid/server_id as
# this slave has connected to the master"; MariaDB's 4052 says "is already connected").
_SAME_ID_TEXT = "same server_uuid/server_id"


def _code_message(exc: Exception) -> tuple[int, str]:
    args = tuple(exc.args) + (0, "")
    code = args[0] if isinstance(args[0], int) else 0
    message = str(args[1] if isinstance(args[0], int) else args[0])
    return code, message


def _tls_problem(
    exc: Exception, where: str, config: MysqlSourceConfig | None
) -> SourceError | None:
    """The TLS failure behind ``exc``, said with the key to fix; None if it is not one."""
    code, message = _code_message(exc)
    original = getattr(exc, "original_exception", None)
    head = f"TLS to MySQL/MariaDB at {where} failed"
    if isinstance(original, ssl.SSLCertVerificationError):
        reason = original.verify_message or original.reason or str(original)
        if original.verify_code in (62, 64):  # X509_V_ERR_HOSTNAME/IP_ADDRESS_MISMATCH
            return SourceError(
                f"{head}: the server's certificate does not name this host ({reason}); "
                "connect by a name the certificate holds (source.dsn) or set "
                "source.ssl_verify_identity = false"
            )
        trusted = (
            "the CA in source.ssl_ca"
            if config is not None and config.ssl_ca
            else "a CA this system trusts"
        )
        return SourceError(
            f"{head}: the server's certificate is not signed by {trusted} ({reason}); "
            "set source.ssl_ca to the CA certificate that signed the server's certificate"
        )
    if isinstance(original, ssl.SSLError) or "[SSL" in message:
        reason = str(original) if original is not None else message
        return SourceError(
            f"{head}: {reason}; check source.ssl_ca, source.ssl_cert and source.ssl_key "
            "(the server must trust the CA of the client certificate)"
        )
    if code == _SSL_CONNECTION_ERROR:
        return SourceError(
            f"{head}: {message}; turn TLS on in the server (ssl_cert, ssl_key in its my.cnf) "
            "or remove source.ssl_* from the configuration"
        )
    if code == _INSECURE_TRANSPORT:
        return SourceError(
            f"MySQL/MariaDB at {where} refuses connections without TLS ({message}); "
            "set source.ssl_ca (and source.ssl_cert/ssl_key for a user created REQUIRE X509)"
        )
    return None


def connect_error(
    exc: Exception, where: str, config: MysqlSourceConfig | None = None
) -> SourceError:
    """A failed connection (checks, positions) as the error to show; ``config`` tells
    which TLS keys are set, to name the one to fix."""
    problem = _tls_problem(exc, where, config)
    if problem is not None:
        return problem
    code, message = _code_message(exc)
    text = f"cannot connect to MySQL/MariaDB at {where}: {message}"
    if code == _ACCESS_DENIED:
        hint = ""
        if config is not None and not config.ssl_cert:
            hint = " (a user created REQUIRE X509 also needs source.ssl_cert and source.ssl_key)"
        return SourceError(
            f"{text}; check the user and set the password with source.password_env or "
            f"source.password_file{hint}"
        )
    if code in CONNECTION_LOST_CODES:
        return SourceUnavailableError(f"{text}; check source.dsn")
    return SourceError(f"{text}; check source.dsn")


def stream_error(
    exc: Exception, where: str, config: MysqlSourceConfig | None = None
) -> SourceError:
    """A failure of the binlog connection while streaming as the error to show."""
    problem = _tls_problem(exc, where, config)
    if problem is not None:
        return problem
    code, message = _code_message(exc)
    if code == _NO_REPLICATION_PRIVILEGE or "REPLICATION SLAVE" in message:
        return SourceError(f"{message}; fix: GRANT REPLICATION SLAVE ON *.* TO <user>")
    if code == _SLAVE_SAME_ID or (code == _BINLOG_UNREADABLE and _SAME_ID_TEXT in message):
        return SourceDisplacedError(
            f"another binlog reader with this server id connected to {where} and the server "
            f"ended this one's dump ({message.split(';')[0]}): two daemons with the same "
            "name (or source.server_id) read one server; give each its own source.server_id"
        )
    if code == _BINLOG_UNREADABLE:
        return SourceError(
            f"the server cannot send the binlog from the start position: {message}; "
            "the binlog may have been purged: reset the offsets (cdcd offsets reset), or, "
            "on a first start, fix source.initial_position"
        )
    if code == _ACCESS_DENIED:
        return connect_error(exc, where, config)
    if code in CONNECTION_LOST_CODES:
        return SourceUnavailableError(f"lost the binlog connection to {where}: {message}")
    return SourceError(f"the binlog connection to {where} failed: {message}")
