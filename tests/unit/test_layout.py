"""The test tree's one structural rule.

Most test directories have no `__init__.py` (pytest's default import mode puts
each such directory on sys.path), so two test modules with the same file name
collide: pytest aborts the whole run with "import file mismatch". Three have one
(`tests/unit/fsm`, `session`, `wire`, for their helpers' relative imports); the
rule holds across the whole tree anyway, so moving a file never makes a clash.
Catch clashes here with a message that names both files.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_module_names_are_unique() -> None:
    seen: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("*.py"):
        if path.name not in ("conftest.py", "__init__.py") and "__pycache__" not in path.parts:
            seen[path.name].append(str(path.relative_to(TESTS)))
    clashes = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not clashes, f"rename one of each: {clashes}"
