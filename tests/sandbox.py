"""The confinement of systemd/cdcd@.service, without systemd: for a child process, the
system call allow list its ``SystemCallFilter=`` lines make (expanded by
``systemd-analyze syscall-filter``, refused calls failing with EPERM as
``SystemCallErrorNumber=EPERM``, other architectures killed as
``SystemCallArchitectures=native``), ``NoNewPrivileges=yes``, and
``MemoryDenyWriteExecute=yes`` as the kernel enforces it (``PR_SET_MDWE``, Linux 6.3+,
which systemd 254+ uses; earlier ones load a seccomp filter to the same effect).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

PR_SET_NO_NEW_PRIVS = 38
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000


@functools.cache
def syscall_set(name: str) -> frozenset[str]:
    """The system calls of ``@name`` (nested sets expanded), as this systemd defines it."""
    listing = subprocess.run(
        ["systemd-analyze", "syscall-filter", name], capture_output=True, text=True, check=True
    ).stdout.splitlines()[1:]  # the first line is the set's own name
    calls: set[str] = set()
    for line in listing:
        word = line.strip()
        if word.startswith("@"):
            calls |= syscall_set(word)
        elif word and not word.startswith("#"):
            calls.add(word)
    return frozenset(calls)


def unit_syscalls(unit: Path) -> frozenset[str]:
    """The system calls a unit's ``SystemCallFilter=`` lines allow, in order (an allow
    list, then ``~`` lines taking sets out of it)."""
    allowed: set[str] = set()
    for line in unit.read_text().splitlines():
        if not line.startswith("SystemCallFilter="):
            continue
        value = line.partition("=")[2]
        deny = value.startswith("~")
        calls = set().union(
            *(syscall_set(w) if w[0] == "@" else {w} for w in value.lstrip("~").split())
        )
        allowed = allowed - calls if deny else allowed | calls
    return frozenset(allowed)


def confinement(allowed: frozenset[str]) -> Callable[[], None]:
    """A ``preexec_fn`` confining the child it runs in (and what it executes)."""
    libc = ctypes.CDLL(None, use_errno=True)
    seccomp = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    seccomp.seccomp_init.restype = ctypes.c_void_p
    seccomp.seccomp_init.argtypes = [ctypes.c_uint32]
    seccomp.seccomp_rule_add.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
    ]
    seccomp.seccomp_load.argtypes = [ctypes.c_void_p]
    numbers = [seccomp.seccomp_syscall_resolve_name(name.encode()) for name in sorted(allowed)]

    def confine() -> None:
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
        if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_MDWE")
        ctx = seccomp.seccomp_init(SCMP_ACT_ERRNO | errno.EPERM)
        for number in numbers:
            # A name of another architecture (arm_fadvise64_64...) is refused: not needed.
            seccomp.seccomp_rule_add(ctx, SCMP_ACT_ALLOW, number, 0)
        if seccomp.seccomp_load(ctx) != 0:
            raise OSError(errno.EINVAL, "seccomp_load")

    return confine


def mdwe_supported() -> bool:
    """Whether this kernel has ``PR_SET_MDWE`` (asked in a child: it cannot be undone)."""
    probe = (
        "import ctypes, sys; libc = ctypes.CDLL(None); "
        f"sys.exit(libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0)"
    )
    return subprocess.run([sys.executable, "-c", probe]).returncode == 0
