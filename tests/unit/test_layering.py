"""The layering rule of docs/architecture.md, checked on every import in the tree."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("bgp", "rib", "fib", "ipam", "podbgp")
# What each part may import from the other parts (a prefix of the imported module's name).
ALLOWED = {
    "bgp": (),
    "rib": ("bgp.wire",),
    "fib": (),
    "ipam": (),
    "podbgp": ("bgp", "rib", "fib", "ipam"),
}
# The one bridge: the RIB side of the speaker's sink and source factory.
BRIDGES = {"rib/adapter.py": ("bgp.events", "bgp.negotiate")}


def _imports(path: Path) -> list[str]:
    out: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append(node.module)
    return out


def _allowed(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_imports_only_point_down() -> None:
    wrong = []
    for part in PARTS:
        for path in sorted((ROOT / part).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            ok = ALLOWED[part] + BRIDGES.get(rel, ())
            for name in _imports(path):
                other = name.split(".")[0]
                if other in PARTS and other != part and not _allowed(name, ok):
                    wrong.append(f"{rel} imports {name}")
    assert not wrong, wrong


def test_pyroute2_only_in_the_cni_plugin() -> None:
    allowed = {"podbgp/cni_net.py", "podbgp/cni.py"}
    users = {
        str(path.relative_to(ROOT))
        for part in PARTS
        for path in (ROOT / part).rglob("*.py")
        if any(n.split(".")[0] == "pyroute2" for n in _imports(path))
    }
    assert users <= allowed, users - allowed
