"""Run the atheris target for a bounded time (``make test``); ``make fuzz`` runs it longer.

The run starts from the seeds (captured sessions, golden vectors) and
``regressions/``, so every input that once found a bug is replayed first.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.timeout(120)
def test_fuzz_decode_and_consumers_bounded(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    proc = subprocess.run(
        [
            sys.executable,
            str(HERE / "fuzz_decode.py"),
            # A fixed seed and a fixed number of runs: the same inputs on every machine,
            # so a CI run is reproducible (`make fuzz` explores further, at random).
            "-seed=20261127",
            "-runs=7000",
            "-rss_limit_mb=2048",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Done" in proc.stderr or "DONE" in proc.stderr
    assert not list(tmp_path.glob("crash-*"))
    # The seeds and every regression input were executed before fuzzing began.
    found = dict(
        (m.group(2), int(m.group(1)))
        for m in re.finditer(r"INFO:\s+(\d+) files found in (\S+)", proc.stderr)
    )
    assert found[str(corpus)] >= 100
    assert found[str(HERE / "regressions")] == len(list((HERE / "regressions").iterdir()))
