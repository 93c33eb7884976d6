"""docs/architecture.md names modules and functions; every dotted name in it must exist,
and every path it names must be in the tree, so the walk-through cannot drift silently."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
PARTS = ("bgp", "rib", "fib", "ipam", "podbgp")
NAME = re.compile(r"\b(?:" + "|".join(PARTS) + r")(?:\.\w+)+")


def _resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(dotted)


def _code_spans() -> list[str]:
    return re.findall(r"`([^`\n]+)`", DOC.read_text())


def test_every_dotted_name_in_the_architecture_doc_exists() -> None:
    names = {
        m.group(0) for span in _code_spans() for m in re.finditer(NAME, span) if "/" not in span
    }
    assert len(names) > 30  # the walk-throughs name modules at every hop
    missing = []
    for name in sorted(names):
        try:
            _resolve(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert not missing, f"docs/architecture.md names what the tree lacks: {missing}"


def test_every_path_in_the_architecture_doc_exists() -> None:
    paths = {s for s in _code_spans() if "/" in s and re.fullmatch(r"[\w./-]+", s)}
    assert paths
    assert not [p for p in sorted(paths) if not (ROOT / p).exists()]
