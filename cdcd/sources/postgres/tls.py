"""TLS to PostgreSQL: the ``source.ssl*`` keys as libpq's parameters, and what a TLS
failure means, with the key to fix.

libpq makes the TLS session itself. The keys are passed to every session of the source
(the metadata and replication connections, snapshot scans in their processes, heartbeats,
``cdcd check``) and win over the same parameters in ``source.dsn``:

- ``sslmode``: ``verify-full`` checks that a CA in ``sslrootcert`` signed the server's
  certificate and that it names the host of ``source.dsn``; ``verify-ca`` only the first;
  ``require`` encrypts (and, given ``sslrootcert``, checks as ``verify-ca``);
- ``sslrootcert``: that CA (PEM), or ``system`` for the system's CAs;
- ``sslcert``/``sslkey``: the client certificate, for pg_hba.conf's ``cert`` method;
  ``sslpassword_env``/``_file``: the passphrase of an encrypted key (libpq's sslpassword).

Files are checked before a connection is made, so a missing one is named by its key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cdcd.errors import ConfigError
from cdcd.sources.common import check_readable

if TYPE_CHECKING:
    from cdcd.sources.postgres.config import PostgresSourceConfig

KEYS = ("sslmode", "sslrootcert", "sslcert", "sslkey")


def tls_parameters(config: PostgresSourceConfig) -> dict[str, str]:
    """libpq's parameters for the ``source.ssl*`` keys that are set.

    Raises ``ConfigError`` naming a key whose file cannot be read.
    """
    if config.sslkey and not config.sslcert:
        raise ConfigError("source.sslkey: set source.sslcert too (the client certificate)")
    if config.sslrootcert != "system":
        check_readable("source.sslrootcert", config.sslrootcert)
    check_readable("source.sslcert", config.sslcert)
    check_readable("source.sslkey", config.sslkey)
    if config.sslkey and config.sslpassword() is None and _encrypted(config.sslkey):
        # Without a passphrase OpenSSL would ask for one on the terminal, blocking the daemon.
        raise ConfigError(
            f"source.sslkey: {config.sslkey} is encrypted: set its passphrase with "
            "source.sslpassword_env or source.sslpassword_file"
        )
    return {key: value for key in KEYS if (value := getattr(config, key)) is not None}


def _encrypted(path: str) -> bool:
    """Whether the PEM key file is encrypted (PKCS#8's ENCRYPTED PRIVATE KEY, or the
    traditional Proc-Type header); only its first lines are read."""
    with open(path, errors="replace") as key:
        head = key.read(200)
    return "ENCRYPTED" in head


def tls_hint(text: str, config: PostgresSourceConfig | None) -> str | None:
    """What to fix when libpq's ``text`` says a connection failed on TLS; None if not."""
    rootcert = config.sslrootcert if config is not None else None
    if "certificate verify failed" in text:
        signer = f"the CA in source.sslrootcert ({rootcert})" if rootcert else "a trusted CA"
        return (
            f"the server's certificate is not signed by {signer}: set source.sslrootcert to "
            "the CA certificate that signed it"
        )
    if "does not match host name" in text:
        return (
            "the server's certificate does not name the host of source.dsn: connect by a "
            'name it holds, or set source.sslmode = "verify-ca" (the CA is checked, not the name)'
        )
    if "root certificate file" in text:
        return "set source.sslrootcert to the CA certificate that signed the server's"
    if "private key" in text:
        return (
            "check source.sslkey (the client certificate's key, PEM, mode 0600) and, for an "
            "encrypted key, its passphrase (source.sslpassword_env or source.sslpassword_file)"
        )
    if "certificate file" in text or "requires a valid client certificate" in text:
        return "set source.sslcert and source.sslkey to the client certificate and its key"
    if "certificate authentication failed" in text:
        return (
            "the client certificate's CN must be the user's name (or mapped to it in "
            "pg_ident.conf): check source.sslcert and the user in source.dsn"
        )
    if "server does not support SSL" in text:
        return 'the server has ssl = off: turn it on, or set source.sslmode = "prefer"'
    if "no encryption" in text:
        return (
            'pg_hba.conf lets this user in over TLS only: set source.sslmode = "verify-full" '
            "and source.sslrootcert"
        )
    return None
