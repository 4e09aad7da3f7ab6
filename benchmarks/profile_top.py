"""The top entries of a py-spy profile (speedscope JSON), per function.

``self``: samples where the function itself was running (the leaf of the stack);
``total``: samples where it was anywhere on the stack. Idle samples (waiting in
epoll/select) are not recorded by py-spy unless ``--idle`` is given, so the shares are
shares of the time cdcd was running, or runnable: on a machine short of CPU, time spent
waiting for a core counts too, spread like the rest.

    python benchmarks/profile_top.py benchmarks/results/profile-postgres.speedscope.json
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_SITE = re.compile(r".*/(site-packages|lib/python3\.\d+)/")


def _short(file: str) -> str:
    file = _SITE.sub("", file)
    marker = "/cdcd/"
    if marker in file:
        file = "cdcd/" + file.split(marker, 1)[1]
    return file


def top_entries(path: str | Path, limit: int = 20) -> dict[str, Any]:
    """Self and total time per function, the largest first."""
    data = json.loads(Path(path).read_text())
    frames = data["shared"]["frames"]
    names = [f"{f['name']} ({_short(f.get('file') or '?')})" for f in frames]
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    weight_sum = 0.0
    for profile in data["profiles"]:
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            weight_sum += weight
            if not stack:
                continue
            own[names[stack[-1]]] += weight
            # py-spy --subprocesses adds a "process <pid>: <command>" root frame.
            for name in {names[i] for i in stack if not frames[i]["name"].startswith("process ")}:
                total[name] += weight

    def rows(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {
                "function": name,
                "seconds": round(w, 3),
                "share": round(w / weight_sum, 4) if weight_sum else 0,
            }
            for name, w in counter.most_common(limit)
        ]

    return {"sampled_s": round(weight_sum, 2), "self": rows(own), "total": rows(total)}


def format_top(top: dict[str, Any]) -> str:
    lines = [f"sampled non-idle time: {top['sampled_s']} s"]
    for kind, title in (
        ("self", "self time (the function itself)"),
        ("total", "total time (function and callees)"),
    ):
        lines.append("")
        lines.append(f"top {len(top[kind])} by {title}:")
        for row in top[kind]:
            lines.append(
                f"  {row['share'] * 100:5.1f}%  {row['seconds']:8.2f} s  {row['function']}"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.stdout.write(format_top(top_entries(sys.argv[1])))
