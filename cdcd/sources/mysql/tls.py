"""TLS to MySQL/MariaDB: the ``source.ssl_*`` keys as one ``ssl.SSLContext``.

pymysql's own ``ssl_*`` arguments do not mean what the keys say: with ``ssl_ca`` alone
it encrypts but checks no certificate, and its deprecated ``ssl`` dict checks the host
name whatever ``ssl_verify_identity`` says. A context built here is used as is, by the
checks' connections and by the binlog connection alike.

- ``ssl_ca``: the server's certificate must be signed by that CA (MySQL's VERIFY_CA);
- ``ssl_verify_identity``: and name the host of ``source.dsn`` (VERIFY_IDENTITY; without
  ``ssl_ca``, against the system's CAs);
- ``ssl_cert``/``ssl_key``: the client certificate, for users created ``REQUIRE X509``;
  alone, the connection is encrypted but the server is not verified (REQUIRED).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from cdcd.errors import ConfigError
from cdcd.sources.common import check_readable

if TYPE_CHECKING:
    from cdcd.sources.mysql.config import MysqlSourceConfig


def tls_context(config: MysqlSourceConfig) -> ssl.SSLContext | None:
    """The TLS context the ``source.ssl_*`` keys ask for; None when none is set.

    Raises ``ConfigError`` naming the key whose file cannot be read or used.
    """
    if not (config.ssl_ca or config.ssl_cert or config.ssl_key or config.ssl_verify_identity):
        return None
    if config.ssl_key and not config.ssl_cert:
        raise ConfigError("source.ssl_key: set source.ssl_cert too (the client certificate)")
    for key in ("ssl_ca", "ssl_cert", "ssl_key"):
        check_readable(f"source.{key}", getattr(config, key))
    try:
        context = ssl.create_default_context(cafile=config.ssl_ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"source.ssl_ca: cannot use {config.ssl_ca}: {_reason(exc)}") from None
    # Certificates that MySQL makes itself do not pass Python 3.13's strict X.509 checks.
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    if config.ssl_ca or config.ssl_verify_identity:
        context.check_hostname = config.ssl_verify_identity
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.ssl_cert:
        try:
            context.load_cert_chain(config.ssl_cert, keyfile=config.ssl_key)
        except (OSError, ssl.SSLError) as exc:
            key = "ssl_key" if config.ssl_key and _about_key(exc) else "ssl_cert"
            raise ConfigError(
                f"source.{key}: cannot use {getattr(config, key)}: {_reason(exc)} "
                "(PEM files: the client certificate in ssl_cert, its private key in ssl_key)"
            ) from None
    return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _about_key(exc: BaseException) -> bool:
    return isinstance(exc, ssl.SSLError) and "KEY" in (exc.reason or "").upper()
