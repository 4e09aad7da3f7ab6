"""The confinement of systemd/cdcd@.service, without systemd: for a child process, the
system call allow list its ``SystemCallFilter=`` lines make (expanded by
``systemd-analyze syscall-filter``, refused calls failing with EPERM as
``SystemCallErrorNumber=EPERM``, other architectures killed as
``SystemCallArchitectures=native``), ``NoNewPrivileges=yes``, and
``MemoryDenyWriteExecute=yes`` as the kernel enforces it (``PR_SET_MDWE``, Linux 6.3+,
which systemd 254+ uses) together with the seccomp filter systemd 252 loads for it.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


class _ArgCmp(ctypes.Structure):  # libseccomp's struct scmp_arg_cmp
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


SCMP_CMP_MASKED_EQ = 7
PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000
# systemd 252's MemoryDenyWriteExecute= filter: no writable+executable mapping, no
# mprotect() to executable at all, no executable shared memory (call, argument, mask).
_WRITE_XOR_EXECUTE = [
    ("mmap", 2, PROT_WRITE | PROT_EXEC),
    ("mprotect", 2, PROT_EXEC),
    ("pkey_mprotect", 2, PROT_EXEC),
    ("shmat", 2, SHM_EXEC),
]


def _library() -> Any:
    seccomp = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    seccomp.seccomp_init.restype = ctypes.c_void_p
    seccomp.seccomp_init.argtypes = [ctypes.c_uint32]
    seccomp.seccomp_rule_add.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
    ]
    seccomp.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    seccomp.seccomp_load.argtypes = [ctypes.c_void_p]
    return seccomp


def confinement(allowed: frozenset[str]) -> Callable[[], None]:
    """A ``preexec_fn`` confining the child it runs in (and what it executes): the allow
    list, then systemd's write-xor-execute filter, and the kernel's own (PR_SET_MDWE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    seccomp = _library()
    numbers = [seccomp.seccomp_syscall_resolve_name(name.encode()) for name in sorted(allowed)]
    refusals = [
        (
            seccomp.seccomp_syscall_resolve_name(name.encode()),
            _ArgCmp(arg, SCMP_CMP_MASKED_EQ, mask, mask),
        )
        for name, arg, mask in _WRITE_XOR_EXECUTE
    ]

    def load(ctx: int) -> None:
        if seccomp.seccomp_load(ctx) != 0:
            raise OSError(errno.EINVAL, "seccomp_load")

    def confine() -> None:
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
        if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_MDWE")
        ctx = seccomp.seccomp_init(SCMP_ACT_ALLOW)
        for number, condition in refusals:
            seccomp.seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO | errno.EPERM, number, 1, condition)
        load(ctx)
        ctx = seccomp.seccomp_init(SCMP_ACT_ERRNO | errno.EPERM)
        for number in numbers:
            # A name of another architecture (arm_fadvise64_64...) is refused: not needed.
            seccomp.seccomp_rule_add(ctx, SCMP_ACT_ALLOW, number, 0)
        load(ctx)

    return confine


def mdwe_supported() -> bool:
    """Whether this kernel has ``PR_SET_MDWE`` (asked in a child: it cannot be undone)."""
    probe = (
        "import ctypes, sys; libc = ctypes.CDLL(None); "
        f"sys.exit(libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0)"
    )
    return subprocess.run([sys.executable, "-c", probe]).returncode == 0
