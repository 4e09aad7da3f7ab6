"""cdcd's reach into aiokafka past its public API (cdcd/sinks/kafka/shims.py) still finds
what it relies on in the installed aiokafka: an upgrade that removes any of it fails here,
by name, rather than as a slow or silent misbehaviour in production."""

from __future__ import annotations

import aiokafka

from cdcd.sinks.kafka import shims


async def test_the_installed_aiokafka_has_what_the_shims_rely_on():
    gaps = await shims.missing()
    assert gaps == [], f"aiokafka {aiokafka.__version__} lacks: {', '.join(gaps)}"


def test_nothing_is_patched_at_import_and_install_is_idempotent():
    import subprocess
    import sys

    from aiokafka.producer import sender

    code = (
        "import aiokafka.producer.sender as s; import cdcd.sinks.kafka.sink; "
        "print(s.BACKOFF_OVERRIDE)"
    )
    before = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert before.stdout.strip() != str(shims.CONCURRENT_TRANSACTIONS_BACKOFF_S)
    shims.install()
    shims.install()
    assert sender.BACKOFF_OVERRIDE == shims.CONCURRENT_TRANSACTIONS_BACKOFF_S
