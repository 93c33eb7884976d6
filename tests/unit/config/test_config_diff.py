"""What a SIGHUP reload must do: `diff_configs` between two valid configs."""

from __future__ import annotations

import ipaddress

from podbgp.config import ConfigDiff, diff_configs, load_config_text

NODE = '[node]\nname = "n1"\nasn = 64512\naddress = "10.0.0.1/24"\n'
POLICIES = (
    '[[policy]]\nname = "in"\n[[policy.rule]]\nmatch = { prefix = "10.0.0.0/8", le = 32 }\n'
    '[[policy]]\nname = "out"\n[[policy.rule]]\nset = { med = 10 }\n'
)


def peer(address: str, extra: str = "") -> str:
    return f'[[bgp.peer]]\naddress = "{address}"\nasn = 65000\n{extra}'


def addresses(peers: tuple[object, ...]) -> list[str]:
    return [str(p.address) for p in peers]  # type: ignore[attr-defined]


def test_identical_configs_have_an_empty_diff() -> None:
    text = NODE + peer("10.0.0.2") + POLICIES
    diff = diff_configs(load_config_text(text), load_config_text(text))
    assert diff == ConfigDiff() and diff.empty
    assert load_config_text(text).diff(load_config_text(text)).empty


def test_added_removed_and_reset_peers() -> None:
    old = load_config_text(NODE + peer("10.0.0.2") + peer("10.0.0.3") + peer("10.0.0.4"))
    new = load_config_text(
        NODE + peer("10.0.0.2") + peer("10.0.0.3", 'password = "x"\n') + peer("10.0.0.5")
    )
    diff = diff_configs(old, new)
    assert addresses(diff.peers_added) == ["10.0.0.5"]
    assert addresses(diff.peers_removed) == ["10.0.0.4"]
    assert addresses(diff.peers_reset) == ["10.0.0.3"]
    assert diff.peers_reset[0].password == "x"  # the new version
    assert diff.peers_import_changed == diff.peers_export_changed == ()
    assert diff.changed_keys == ()


def test_peer_order_does_not_matter() -> None:
    old = load_config_text(NODE + peer("10.0.0.2") + peer("10.0.0.3"))
    new = load_config_text(NODE + peer("10.0.0.3") + peer("10.0.0.2"))
    assert diff_configs(old, new).empty


def test_policy_name_change_refreshes_without_reset() -> None:
    old = load_config_text(NODE + peer("10.0.0.2") + POLICIES)
    new = load_config_text(NODE + peer("10.0.0.2", 'import = "in"\nexport = "out"\n') + POLICIES)
    diff = diff_configs(old, new)
    assert diff.peers_reset == ()
    assert addresses(diff.peers_import_changed) == ["10.0.0.2"]
    assert addresses(diff.peers_export_changed) == ["10.0.0.2"]


def test_policy_content_change_reaches_the_peers_using_it() -> None:
    uses = peer("10.0.0.2", 'export = "out"\n') + peer("10.0.0.3", 'import = "in"\n')
    old = load_config_text(NODE + uses + POLICIES)
    new = load_config_text(NODE + uses + POLICIES.replace("med = 10", "med = 20"))
    diff = diff_configs(old, new)
    assert diff.policies_changed == frozenset({"out"})
    assert addresses(diff.peers_export_changed) == ["10.0.0.2"]
    assert diff.peers_import_changed == () and diff.peers_reset == ()


def test_inherited_hold_time_change_resets_peers_and_is_a_changed_key() -> None:
    old = load_config_text(NODE + peer("10.0.0.2") + peer("10.0.0.3", "hold_time = 30\n"))
    new = load_config_text(
        NODE + "[bgp]\nhold_time = 60\n" + peer("10.0.0.2") + peer("10.0.0.3", "hold_time = 30\n")
    )
    diff = diff_configs(old, new)
    # The peer with its own hold time keeps its session.
    assert addresses(diff.peers_reset) == ["10.0.0.2"]
    assert set(diff.changed_keys) == {"bgp.hold_time", "bgp.keepalive"}


def test_listen_ranges_originate_and_sections() -> None:
    rng = '[[bgp.listen_range]]\nprefix = "10.9.0.0/24"\nasn = 65001\n'
    old = load_config_text(NODE + rng + '[[ipam.pool]]\ncidr = "10.244.0.0/16"\n')
    new = load_config_text(
        NODE.replace("n1", "n2")
        + rng.replace("65001", "65002")
        + '[[bgp.listen_range]]\nprefix = "10.8.0.0/24"\nasn = 1\n'
        + '[[bgp.originate]]\nprefix = "10.96.0.0/12"\n'
        + "[fib]\nresync_interval = 10\n"
    )
    diff = diff_configs(old, new)
    assert [r.prefix for r in diff.listen_ranges_changed] == [ipaddress.ip_network("10.9.0.0/24")]
    assert [r.prefix for r in diff.listen_ranges_added] == [ipaddress.ip_network("10.8.0.0/24")]
    assert diff.listen_ranges_removed == ()
    assert diff.originate_changed
    assert diff.changed_keys == ("node", "ipam.pool", "fib.resync_interval")
