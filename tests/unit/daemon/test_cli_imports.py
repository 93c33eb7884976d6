"""`podbgp WORD` imports WORD's module only: an idle daemon does not carry the client
commands' code (explain, lab, advise...) for its whole life."""

from __future__ import annotations

import argparse
import subprocess
import sys

from podbgp.cli import COMMAND_MODULES, COMMANDS, build_parser


def _words(parser: argparse.ArgumentParser) -> set[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_the_command_map_names_every_word_of_every_module() -> None:
    assert _words(build_parser()) == set(COMMANDS)
    assert set(COMMANDS.values()) == set(COMMAND_MODULES)
    for word, module in COMMANDS.items():
        alone = _words(build_parser(word))
        assert word in alone
        assert alone == {w for w, m in COMMANDS.items() if m == module}


def test_run_imports_no_client_command() -> None:
    code = (
        "import sys\n"
        "from podbgp.cli import main\n"
        "try:\n"
        "    main(['run', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(m for m in sys.modules if m.startswith('podbgp.cmd_')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.splitlines()[-1].split() == ["podbgp.cmd_run"]


def test_an_unknown_word_still_lists_every_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "podbgp", "nope"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert "invalid choice: 'nope'" in out.stderr and "advise" in out.stderr


def test_the_daemon_loads_no_metadata_reader_prometheus_or_pyroute2_by_itself() -> None:
    """importlib.metadata (~2.7 MB: email, zipfile, csv...) is for --version and BMP's
    sysDescr; prometheus_client is a test dependency only (the endpoint, `podbgp.metrics`,
    writes the format itself on the daemon's loop); pyroute2 (~9 MB) is the CNI plugin's
    alone (the daemon speaks rtnetlink with `fib.rtnl`)."""
    code = (
        "import sys\n"
        "import podbgp.cli, podbgp.cmd_run, podbgp.daemon, podbgp.wiring, podbgp.bgpnode\n"
        "import podbgp.underlay, fib.netlink, podbgp.metrics\n"
        "print(' '.join(m for m in ('importlib.metadata', 'prometheus_client', 'email',"
        " 'pyroute2', 'http.server', 'wsgiref')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == ""
