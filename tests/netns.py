"""Separate "hosts" on this machine for failover tests: network namespaces that reach the
shared test servers at their usual addresses, and links that can be cut.

How it works, for one host (``with host("a") as a:``)::

      namespace cdcdt-<pid>-<n>-a                       root namespace (the test servers)
    ┌──────────────────────────────────┐            ┌─────────────────────────────────────┐
    │ cdcd ─► 127.0.0.1:29092 ─► fwd ──┼─ "kafka" ──┼─► fwd on 10.213.x.1:29092 ─► 127.0.0.1:29092
    │      ─► 127.0.0.1:25432 ─► fwd ──┼─ "db" ─────┼─► fwd on 10.213.y.1:25432 ─► 127.0.0.1:25432
    └──────────────────────────────────┘   veths    └─────────────────────────────────────┘

- ``ip netns add`` makes the namespace (a host with its own loopback, nothing else).
- Two veth pairs join it to the root namespace, each with its own private /30 from
  10.213.0.0/16: the "kafka" link carries the Kafka ports, the "db" link the database
  ports. Inside, the ends are called ``kafka`` and ``db``; outside, ``cdt<pid hex>.<n hex>k``
  and ``...d``.
- The servers listen on 127.0.0.1 of the root namespace only, and a configuration file
  must work unchanged (Kafka advertises 127.0.0.1:29092), so inside the namespace a
  forwarder (tests/netns_forward.py, run with ``ip netns exec``) listens on
  127.0.0.1:<port> and forwards over the right veth to a second forwarder in the root
  namespace, bound to that veth's root-side address only, which connects to
  127.0.0.1:<port>. The servers see clients from 127.0.0.1, so their access rules
  (pg_hba.conf, MariaDB's users) need no change. No netfilter is needed.
- ``cut("kafka")`` sets the root-side end of the kafka veth down: packets are dropped
  (no RST, no FIN), established connections stall and resume after ``restore("kafka")``
  if the cut was short (TCP retransmits). A connect from inside still succeeds at once
  (the inside forwarder answers on loopback), but no byte passes until the link is back:
  the forwarder holds the connection and retries its own connect, as a SYN would be
  retransmitted. ``cut("db")`` does the same to the database ports. The packets are
  dropped at the host's own veth, which Linux TCP takes for local congestion: it retries
  every ~0.5 s instead of backing off, so traffic flows again within ~0.1-0.6 s of
  ``restore`` whatever the cut's length (measured for cuts of 1-10 s), where a real
  remote partition can leave a connection waiting out TCP's backoff for seconds more.
- ``a.popen(argv)`` runs ``ip netns exec <ns> argv`` (the PID is argv's own: ``ip``
  execs it); ``a.daemon(tmp_path, config)`` is ``support.daemon`` on that host;
  ``with a.inside():`` switches the calling thread into the namespace, so sockets made
  in the block belong to the host (they stay there after the block).
- Cleanup, whatever happens: every process inside the namespace (``ip netns pids``) and
  both forwarders are killed by PID, the namespace and its veths are deleted.
  Forwarders also exit when the test process dies. Names carry the creating PID: a
  later run deletes a ``cdcdt-*`` namespace (and a leftover ``cdt*`` veth) only when
  that PID is dead. Creation is serialised by a lock file, so parallel test processes
  never pick the same names or subnets.

Needs root (``ip netns``): the fixture ``netns_hosts`` skips without it, except under
CI (``CI`` set), where it fails, as it does anywhere if root cannot make a namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import ipaddress
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from support import ROOT, Daemon, daemon, process_gone

PREFIX = "cdcdt-"
NAMESPACE = re.compile(r"^cdcdt-(\d+)-[0-9a-f]+-")
ROOT_VETH = re.compile(r"^cdt([0-9a-f]+)\.[0-9a-f]+[kd]$")
SUBNETS = ipaddress.IPv4Network("10.213.0.0/16")
LOCK_PATH = Path("/run/cdcdt-netns.lock")
FORWARDER = Path(__file__).with_name("netns_forward.py")
LINKS = ("kafka", "db")
CLONE_NEWNET = 0x40000000
_counter = itertools.count()
_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(RuntimeError):
    """A namespace, veth or forwarder could not be set up; the message says which."""


def ip(*args: str, netns: str | None = None) -> str:
    """Run ``ip [-n netns] args``; its stdout."""
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise NetnsError(f"`{' '.join(argv)}` failed: {result.stderr.strip()}")
    return result.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill(pids: list[int], timeout: float = 10) -> None:
    """SIGKILL ``pids``; returns once each is gone (or a zombie its parent will reap)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in pids:
        if not process_gone(pid, timeout):
            raise NetnsError(f"process {pid} survived SIGKILL for {timeout}s")


def _stop(processes: list[subprocess.Popen[Any]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def namespace_pids(netns: str) -> list[int]:
    """The processes running inside ``netns``."""
    return [int(p) for p in ip("netns", "pids", netns).split()]


def _delete_namespace(netns: str) -> None:
    _kill(namespace_pids(netns))
    ip("netns", "del", netns)


def _root_veths() -> set[str]:
    lines = ip("-o", "link", "show", "type", "veth").splitlines()
    return {line.split(":")[1].strip().split("@")[0] for line in lines}


def remove_stale() -> list[str]:
    """Delete the namespaces and root-side veths left by test processes that died; their
    names. Those of live processes (other tests running now) are left alone."""
    removed = []
    for line in ip("netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        match = NAMESPACE.match(name)
        if match and not _alive(int(match.group(1))):
            _delete_namespace(name)
            removed.append(name)
    for dev in _root_veths():
        match = ROOT_VETH.match(dev)
        if match and not _alive(int(match.group(1), 16)):
            with contextlib.suppress(NetnsError):  # gone with its namespace meanwhile
                ip("link", "del", dev)
                removed.append(dev)
    return removed


def _free_subnets(count: int) -> list[ipaddress.IPv4Network]:
    used = set()
    for line in ip("-4", "-o", "addr", "show").splitlines():
        address = ipaddress.ip_interface(line.split()[3])
        if address.ip in SUBNETS:
            used.add(address.network.supernet(new_prefix=30))
    free = (net for net in SUBNETS.subnets(new_prefix=30) if net not in used)
    found = list(itertools.islice(free, count))
    if len(found) < count:
        raise NetnsError(f"no free /30 left in {SUBNETS}: delete the cdcdt-* namespaces")
    return found


@contextmanager
def _creation_lock() -> Iterator[None]:
    with LOCK_PATH.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Link:
    """One veth pair: ``inner`` (``kafka``/``db``) inside the host, ``outer`` in the root
    namespace, addresses ``.2`` and ``.1`` of ``network``; ``ports`` are what it carries."""

    inner: str
    outer: str
    network: ipaddress.IPv4Network
    ports: tuple[int, ...]

    @property
    def outer_address(self) -> str:
        return str(self.network[1])

    @property
    def inner_address(self) -> str:
        return str(self.network[2])


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@dataclass
class Host:
    """A network namespace acting as a separate host; see the module's docstring."""

    label: str
    netns: str
    links: dict[str, Link]
    forwarders: list[subprocess.Popen[bytes]] = field(default_factory=list)
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run on this host."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` on this host (``subprocess.Popen`` arguments; cwd: the
        checkout). It is killed when the host ends, if still running."""
        kwargs.setdefault("cwd", ROOT)
        process: subprocess.Popen[Any] = subprocess.Popen(self.command(argv), **kwargs)
        self.processes.append(process)
        return process

    def run(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` on this host to completion, capturing its output."""
        return subprocess.run(
            self.command(argv), capture_output=True, text=True, timeout=timeout, cwd=ROOT
        )

    @contextmanager
    def daemon(
        self, tmp_path: Path, config: dict[str, Any], start: bool = True
    ) -> Iterator[Daemon]:
        """``support.daemon`` with the daemon running on this host."""
        with daemon(tmp_path, config, start=start, prefix=self.command([])) as proc:
            yield proc

    def _link(self, name: str) -> Link:
        if name not in self.links:
            raise ValueError(f"no link {name!r}: one of {', '.join(self.links)}")
        return self.links[name]

    def cut(self, link: str) -> None:
        """Partition this host from the servers behind ``link`` ("kafka" or "db")."""
        ip("link", "set", self._link(link).outer, "down")

    def restore(self, link: str, timeout: float = 5) -> None:
        """Undo ``cut(link)``; returns once the inside end has its carrier back."""
        inner = self._link(link).inner
        ip("link", "set", self._link(link).outer, "up")
        deadline = time.monotonic() + timeout
        while "LOWER_UP" not in ip("-o", "link", "show", "dev", inner, netns=self.netns):
            if time.monotonic() > deadline:
                raise NetnsError(f"{self.netns}: link {inner} has no carrier after {timeout}s")
            time.sleep(0.01)

    @contextmanager
    def inside(self) -> Iterator[None]:
        """Run the block's network code (this thread only) on this host."""
        root = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(f"/run/netns/{self.netns}", os.O_RDONLY)
            try:
                _setns(target)
                try:
                    yield
                finally:
                    _setns(root)
            finally:
                os.close(target)
        finally:
            os.close(root)


def _start_forwarder(argv: list[str], pairs: list[str], what: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [*argv, sys.executable, str(FORWARDER), *pairs], stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # "ready", or EOF if it failed (its stderr says why)
    if line.strip() != b"ready":
        _stop([process])
        raise NetnsError(f"the {what} forwarder did not start ({pairs}): see its stderr")
    return process


def _make_links(netns: str, tag: str, ports: dict[str, tuple[int, ...]]) -> dict[str, Link]:
    links = {}
    for name, network in zip(LINKS, _free_subnets(len(LINKS)), strict=True):
        link = Link(name, f"cdt{tag}{name[0]}", network, ports[name])
        ip("link", "add", link.outer, "type", "veth", "peer", "name", name, "netns", netns)
        ip("addr", "add", f"{link.outer_address}/30", "dev", link.outer)
        ip("link", "set", link.outer, "up")
        ip("addr", "add", f"{link.inner_address}/30", "dev", name, netns=netns)
        ip("link", "set", name, "up", netns=netns)
        links[name] = link
    return links


@contextmanager
def host(
    label: str, kafka_ports: list[int] | tuple[int, ...], db_ports: list[int] | tuple[int, ...]
) -> Iterator[Host]:
    """A host (network namespace) reaching 127.0.0.1:``kafka_ports`` over its "kafka"
    link and 127.0.0.1:``db_ports`` over its "db" link; deleted when the block ends."""
    if not re.fullmatch(r"[a-z0-9]{1,12}", label):
        raise ValueError(f"host label {label!r}: 1-12 lowercase letters or digits")
    if set(kafka_ports) & set(db_ports):
        raise ValueError(f"ports on both links: {sorted(set(kafka_ports) & set(db_ports))}")
    n = next(_counter)
    netns = f"{PREFIX}{os.getpid()}-{n:x}-{label}"
    made = False
    the_host: Host | None = None
    try:
        with _creation_lock():
            remove_stale()
            try:
                ip("netns", "add", netns)
            except NetnsError as exc:
                raise NetnsError(
                    f"{exc} (a network namespace needs root with CAP_SYS_ADMIN, "
                    "a kernel with CONFIG_NET_NS and a writable /run/netns)"
                ) from exc
            made = True
            ip("link", "set", "lo", "up", netns=netns)
            ports = {"kafka": tuple(kafka_ports), "db": tuple(db_ports)}
            links = _make_links(netns, f"{os.getpid():x}.{n:x}", ports)
        the_host = Host(label, netns, links)
        outer, inner = [], []
        for link in links.values():
            for port in link.ports:
                outer.append(f"{link.outer_address}:{port}=127.0.0.1:{port}")
                inner.append(f"127.0.0.1:{port}={link.outer_address}:{port}")
        the_host.forwarders.append(_start_forwarder([], outer, "root-side"))
        the_host.forwarders.append(_start_forwarder(the_host.command([]), inner, "inside"))
        yield the_host
    finally:
        try:
            if the_host is not None:
                _stop(the_host.processes + the_host.forwarders)
        finally:
            if made:
                _delete_namespace(netns)
                _delete_veths(the_host.links.values() if the_host else [])


def _delete_veths(links: Iterable[Link]) -> None:
    """Delete the host's veths (both ends go at once). Left to the namespace's deletion,
    they would linger while a TCP socket closed during a cut still holds the namespace."""
    for link in links:
        with contextlib.suppress(NetnsError):  # already gone
            ip("link", "del", link.outer)
    left = {link.outer for link in links} & _root_veths()
    if left:
        raise NetnsError(f"veths {sorted(left)} survived their deletion")


def _ports(value: str) -> list[int]:
    """The ports of a URL, a DSN or a Kafka bootstrap list ("h:p,h:p")."""
    if "://" in value:
        port = urlsplit(value).port
        return [port] if port else []
    return [int(part.rpartition(":")[2]) for part in value.split(",") if ":" in part]


def testenv_ports(testenv: Mapping[str, str]) -> tuple[list[int], list[int]]:
    """The Kafka ports and the database ports of the test environment's servers."""
    kafka: list[int] = []
    db: list[int] = []
    for key, value in sorted(testenv.items()):
        if key.endswith(("_BOOTSTRAP", "_URL", "_DSN")):
            found = _ports(value)
            target = kafka if key.startswith("CDCD_TEST_KAFKA") else db
            target += [p for p in found if p not in target]
    return kafka, db


def require_netns() -> None:
    """Skip the test when not root (fail under CI, which must run it); fail without ``ip``."""
    if os.geteuid() != 0:
        why = "network namespaces (ip netns) need root"
        if os.environ.get("CI"):
            pytest.fail(f"{why}: CI must run as root", pytrace=False)
        pytest.skip(why)
    if shutil.which("ip") is None:
        pytest.fail("no `ip` command for network namespaces: apt-get install iproute2")


@pytest.fixture
def netns_hosts(testenv: dict[str, str]) -> Iterator[Callable[..., Host]]:
    """A factory of hosts: ``make("a")`` reaches every server of the test environment
    (``kafka_ports=``/``db_ports=`` to choose); all are deleted after the test."""
    require_netns()
    default_kafka, default_db = testenv_ports(testenv)
    with contextlib.ExitStack() as stack:

        def make(
            label: str,
            kafka_ports: list[int] | None = None,
            db_ports: list[int] | None = None,
        ) -> Host:
            kafka = default_kafka if kafka_ports is None else kafka_ports
            db = default_db if db_ports is None else db_ports
            return stack.enter_context(host(label, kafka, db))

        yield make
