"""docs/compatibility.md lists every known difference of tests/compat/known.py."""

from __future__ import annotations

from support import ROOT

from compat.known import KNOWN


def test_the_doc_lists_every_known_difference_with_its_reason():
    doc = ROOT.joinpath("docs", "compatibility.md").read_text()
    missing = [
        f"{source}: {key}"
        for source, known in KNOWN.items()
        for key, reason in known.items()
        if f"`{key}`" not in doc or reason not in doc
    ]
    assert not missing, f"not in docs/compatibility.md: {missing}"
