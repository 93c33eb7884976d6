"""docs/configuration.md against the loader: the same keys, the same defaults.

The reference documents each key as one table row whose first cell is its full
path in backticks (`bgp.peer[].hold_time`), in tables headed
`| key | type | default | meaning |`. The keys the loader accepts come from
`podbgp.config.accepted_keys()`, which collects the very sets the reader checks
unknown keys against. A default written as one backticked TOML value must equal
both what the reader fills in for an absent key and the dataclass default; a
backticked key path instead (`bgp.hold_time`) says the default is inherited and
must name a documented key.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from podbgp.config import (
    APIConfig,
    BGPConfig,
    BMPConfig,
    BMPStation,
    Community,
    Config,
    ConfigError,
    DatastoreConfig,
    FIBConfig,
    IPAMConfig,
    ListenRange,
    Match,
    MRTConfig,
    NodeConfig,
    Originate,
    Peer,
    Policy,
    Pool,
    PrefixAdvertisement,
    Reservation,
    Rule,
    Service,
    SetActions,
    accepted_keys,
    load_config_text,
    toml_name,
)

ROOT = Path(__file__).resolve().parents[3]
REFERENCE = ROOT / "docs" / "configuration.md"
HEADER = ("key", "type", "default", "meaning")
KEY = re.compile(r"`([a-z0-9_]+(?:\[\])?(?:\.[a-z0-9_]+(?:\[\])?)*)`")

# One item in every array of tables, with only the required keys: every other key
# takes its default, which `podbgp check` would print.
MINIMAL = """
[node]
name = "n1"
asn = 64512
address = "10.0.0.1/24"
[[bgp.peer]]
address = "10.0.0.2"
asn = 65000
[[bgp.listen_range]]
prefix = "10.1.0.0/24"
asn = 65001
[[bgp.originate]]
prefix = "10.2.0.0/24"
[[bgp.prefix_advertisement]]
cidr = "10.244.0.0/16"
communities = ["64512:100"]
[[policy]]
name = "p"
[[policy.rule]]
[[ipam.pool]]
cidr = "10.244.0.0/16"
[[ipam.reservation]]
cidrs = ["10.244.0.1"]
[[bmp.station]]
address = "127.0.0.1"
[[service]]
cidr = "10.96.0.0/12"
"""

# The same document built from the dataclasses' own defaults.
DATACLASS_DEFAULTS = Config(
    node=NodeConfig("n1", 64512, ipaddress.IPv4Address("10.0.0.1")),
    bgp=BGPConfig(
        peers=(Peer(address=ipaddress.ip_address("10.0.0.2"), asn=65000),),
        listen_ranges=(ListenRange(prefix=ipaddress.ip_network("10.1.0.0/24"), asn=65001),),
        originate=(Originate(ipaddress.ip_network("10.2.0.0/24")),),
        prefix_advertisements=(
            PrefixAdvertisement(ipaddress.ip_network("10.244.0.0/16"), (Community(64512, 100),)),
        ),
    ),
    policies=(Policy("p", (Rule(),)),),
    ipam=IPAMConfig(
        pools=(Pool(ipaddress.ip_network("10.244.0.0/16"), 26),),
        reservations=(Reservation((ipaddress.ip_network("10.244.0.1/32"),)),),
    ),
    bmp=BMPConfig(stations=(BMPStation(ipaddress.ip_address("127.0.0.1")),)),
    services=(Service(ipaddress.ip_network("10.96.0.0/12")),),
)

# Tables whose defaults `to_dict()` leaves out (rule conditions and changes), so they
# are compared with the dataclass field instead.
FIELDS_OF: dict[str, type] = {
    "node": NodeConfig,
    "bgp": BGPConfig,
    "bgp.peer[]": Peer,
    "bgp.listen_range[]": ListenRange,
    "bgp.originate[]": Originate,
    "policy[]": Policy,
    "policy[].rule[]": Rule,
    "policy[].rule[].match": Match,
    "policy[].rule[].set": SetActions,
    "datastore": DatastoreConfig,
    "ipam": IPAMConfig,
    "ipam.pool[]": Pool,
    "ipam.reservation[]": Reservation,
    "fib": FIBConfig,
    "api": APIConfig,
    "bmp": BMPConfig,
    "bmp.station[]": BMPStation,
    "mrt": MRTConfig,
}


@dataclasses.dataclass(frozen=True)
class Row:
    key: str
    default: str
    line: int


def _cells(line: str) -> list[str]:
    """A markdown table row's cells (`\\|` inside a cell is not a separator)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def parse_reference(text: str) -> tuple[list[Row], list[str]]:
    """The rows of every key table, and the rows that break the format."""
    rows: list[Row] = []
    problems: list[str] = []
    in_table = False
    for n, line in enumerate(text.splitlines(), 1):
        if not line.startswith("|"):
            in_table = False
            continue
        cells = _cells(line)
        if tuple(c.lower() for c in cells) == HEADER:
            in_table = True
            continue
        if not in_table or set("".join(cells)) <= set("-: "):
            continue
        key = KEY.fullmatch(cells[0]) if cells else None
        if len(cells) != len(HEADER) or key is None:
            problems.append(f"line {n}: not `| \\`dotted.key\\` | type | default | meaning |`")
            continue
        rows.append(Row(key.group(1), cells[2], n))
    return rows, problems


def _reference() -> list[Row]:
    rows, problems = parse_reference(REFERENCE.read_text(encoding="utf-8"))
    assert not problems, "docs/configuration.md: " + "; ".join(problems)
    return rows


def _dig(tree: Any, key: str) -> Any:
    """The value at a dotted path of a `to_dict()` tree (first item of arrays), or KeyError."""
    for part in key.split("."):
        name, array = part.removesuffix("[]"), part.endswith("[]")
        tree = tree[name]
        if array:
            tree = tree[0]
    return tree


def _plain(value: Any) -> Any:
    """A dataclass field default as a TOML value."""
    if isinstance(value, Enum):
        return toml_name(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _field_default(key: str) -> Any:
    table, _, name = key.rpartition(".")
    fields = {f.name: f for f in dataclasses.fields(FIELDS_OF[table])}
    field = fields.get({"import": "import_policy", "export": "export_policy"}.get(name, name))
    if field is None or field.default is dataclasses.MISSING:
        raise KeyError(key)
    return _plain(field.default)


def _literal(cell: str) -> Any:
    """The TOML value of a default cell like `"off"` or `[]`; ValueError if it is none."""
    if not (cell.startswith("`") and cell.endswith("`")) or cell.count("`") != 2:
        raise ValueError(cell)
    try:
        return tomllib.loads(f"v = {cell[1:-1]}")["v"]
    except tomllib.TOMLDecodeError:
        raise ValueError(cell) from None


def test_reference_documents_exactly_the_accepted_keys() -> None:
    documented = [r.key for r in _reference()]
    twice = sorted({k for k in documented if documented.count(k) > 1})
    accepted = accepted_keys()
    missing = sorted(accepted - set(documented))
    stale = sorted(set(documented) - accepted)
    assert not twice, f"docs/configuration.md documents these keys twice: {twice}"
    assert not missing, f"keys the loader accepts but docs/configuration.md lacks: {missing}"
    assert not stale, f"keys docs/configuration.md documents but the loader rejects: {stale}"


def test_literal_defaults_match_the_loader_and_the_dataclasses() -> None:
    loaded = load_config_text(MINIMAL).to_dict()
    built = DATACLASS_DEFAULTS.to_dict()
    wrong = []
    checked = 0
    for row in _reference():
        try:
            want = _literal(row.default)
        except ValueError:
            continue
        sources = {}
        for name, tree in (("the loader", loaded), ("the dataclass", built)):
            try:
                sources[name] = _dig(tree, row.key)
            except KeyError:
                pass
        if not sources:
            sources["the dataclass field"] = _field_default(row.key)
        checked += 1
        wrong += [
            f"{row.key}: documented {row.default}, {name} has {got!r}"
            for name, got in sources.items()
            if got != want
        ]
    assert not wrong, "docs/configuration.md defaults differ: " + "; ".join(wrong)
    assert checked > 60  # the check ran over the reference, not over nothing


def test_inherited_defaults_name_documented_keys() -> None:
    rows = _reference()
    keys = {r.key for r in rows}
    bad = []
    for row in rows:
        ref = KEY.fullmatch(row.default)
        if not row.default.startswith("`") or (ref is not None and ref.group(1) in keys):
            continue
        try:
            _literal(row.default)
        except ValueError:
            bad.append(f"line {row.line}: {row.key} default {row.default}")
    assert not bad, "neither a TOML value nor a documented key: " + "; ".join(bad)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "| key | type | default | meaning |\n| --- | --- | --- | --- |\n| a.b | int | `1` | x |\n",
            3,
        ),
        ("| key | type | default | meaning |\n| --- |\n| `a.b` | int | `1` |\n", 3),
    ],
)
def test_rows_out_of_format_are_reported(text: str, problem: int) -> None:
    rows, problems = parse_reference(text)
    assert rows == []
    assert problems == [f"line {problem}: not `| \\`dotted.key\\` | type | default | meaning |`"]


def test_parser_reads_keys_and_defaults() -> None:
    text = (
        "intro\n\n| key | type | default | meaning |\n| --- | --- | --- | --- |\n"
        '| `bgp.peer[].add_path` | string | `"off"` | off \\| send |\n\n'
        "| other | table |\n| --- | --- |\n| free | text |\n"
    )
    rows, problems = parse_reference(text)
    assert problems == []
    assert rows == [Row("bgp.peer[].add_path", '`"off"`', 5)]


def test_accepted_keys_are_what_the_reader_rejects_otherwise() -> None:
    """Each accepted key passes the unknown-key check; a near miss does not."""
    keys = accepted_keys()
    assert {"node.name", "bgp.peer[].hold_time", "policy[].rule[].match.prefix"} <= keys
    assert "bgp.peer" not in keys and "policy[].rule[].match" not in keys  # tables
    with pytest.raises(ConfigError, match=r"bgp\.peer\[0\]\.hold_tme: unknown key"):
        load_config_text(MINIMAL.replace("asn = 65000", "asn = 65000\nhold_tme = 9"))


def test_the_complete_example_loads() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    example = re.search(r"## A complete example\n\n```toml\n(.*?)```", text, re.S)
    assert example is not None
    cfg = load_config_text(example.group(1), "docs/configuration.md")
    assert cfg.bgp.peers[0].export_policy == "tor-out"
