"""Every section's validation errors, each naming the key's path.

Each case is a config with exactly one mistake, and must yield exactly that
one message: a mistake is reported once, at the key that holds it.
"""

from __future__ import annotations

import pytest

from podbgp.config import ConfigError, load_config_text

NODE = '[node]\nname = "n1"\nasn = 64512\naddress = "10.0.0.1/24"\n'


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text)
    return list(info.value.errors)


def node(**keys: str) -> str:
    """A [node] table with the given raw TOML values replacing or dropping the defaults."""
    values = {"name": '"n1"', "asn": "64512", "address": '"10.0.0.1/24"'}
    values.update(keys)
    return "[node]\n" + "".join(f"{k} = {v}\n" for k, v in values.items() if v != "DROP")


NODE_CASES = [
    (node(name="DROP"), "node.name: is required"),
    (node(asn="DROP"), "node.asn: is required"),
    (
        node(name='"a/b"'),
        "node.name: \"a/b\" is not a node name (letters, digits, '-', '.', '_'; ≤ 253)",
    ),
    (node(name='""'), "node.name: \"\" is not a node name (letters, digits, '-', '.', '_'; ≤ 253)"),
    (node(asn="0"), "node.asn: 0 is not an AS number (RFC 7607 reserves AS 0)"),
    (node(asn="23456"), "node.asn: 23456 is AS_TRANS (RFC 6793), not a real AS number"),
    (node(asn="4294967296"), "node.asn: 4294967296 is not an AS number (1..4294967295)"),
    (node(asn='"64512"'), 'node.asn: "64512" is a string, expected an integer'),
    (node(asn="true"), "node.asn: true is a boolean, expected an integer"),
    (node(asn="64512.0"), "node.asn: 64512.0 is a float, expected an integer"),
    (node(router_id='"::1"'), 'node.router_id: "::1" is not an IPv4 address'),
    (
        node(router_id='"0.0.0.0"'),
        'node.router_id: "0.0.0.0" is not a BGP identifier (must be non-zero, RFC 6286 §2.1)',
    ),
    (
        node(address="DROP") + "[bgp]\nmesh = false\n",
        "node.router_id: is required when node.address is absent (it defaults to its IPv4)",
    ),
    (
        node(address='"10.0.0.1"'),
        'node.address: "10.0.0.1" needs a prefix length: the node\'s subnet, e.g. 10.0.0.1/24',
    ),
    (node(address='"fd00::1/64"'), 'node.address: "fd00::1/64" is not an IPv4 address'),
    (
        node(address='"10.0.0.1/33"'),
        'node.address: "10.0.0.1/33" is not an address with a prefix length',
    ),
    (node(address='"0.0.0.0/0"'), 'node.address: "0.0.0.0/0" is not a unicast address'),
    (node(address6='"10.0.0.2/24"'), 'node.address6: "10.0.0.2/24" is not an IPv6 address'),
    (node(adress='"10.0.0.1/24"'), "node.adress: unknown key (did you mean address?)"),
    (node(labels='{ "rack 1" = "a" }'), 'node.labels: "rack 1" is not a label key'),
    (node(labels='{ rack = "r/1" }'), 'node.labels: "r/1" (label rack) is not a label value'),
    (node(labels="{ rack = 1 }"), "node.labels: 1 (label rack) is not a label value"),
    (node(labels='"rack=1"'), 'node.labels: "rack=1" is a string, expected a table'),
    (
        node(address="DROP", router_id='"10.0.0.1"'),
        "node.address: is required for the mesh and route reflection (peers connect to it)",
    ),
    ('node = "n1"\n', 'node: "n1" is a string, expected a table'),
]

BGP_CASES = [
    ('[bgp]\nlisten = ["10.0.0.300"]\n', 'bgp.listen[0]: "10.0.0.300" is not an IP address'),
    ("[bgp]\nlisten = [179]\n", "bgp.listen[0]: 179 is an integer, expected a string"),
    ('[bgp]\nlisten = "0.0.0.0"\n', 'bgp.listen: "0.0.0.0" is a string, expected an array'),
    ('[bgp]\nlisten = ["::", "::"]\n', 'bgp.listen: ["::", "::"] lists an address twice'),
    ("[bgp]\nport = 0\n", "bgp.port: 0 is not a port (1..65535)"),
    ("[bgp]\nport = 65536\n", "bgp.port: 65536 is not a port (1..65535)"),
    (
        "[bgp]\nhold_time = 2\n",
        "bgp.hold_time: 2 is not a hold time (0, or 3..65535; RFC 4271 §4.2)",
    ),
    (
        "[bgp]\nhold_time = 65536\n",
        "bgp.hold_time: 65536 is not a hold time (0, or 3..65535; RFC 4271 §4.2)",
    ),
    (
        "[bgp]\nhold_time = 30\nkeepalive = 30\n",
        "bgp.keepalive: 30 must be 1..29 (below hold_time 30)",
    ),
    ("[bgp]\nkeepalive = 0\n", "bgp.keepalive: 0 must be 1..89 (below hold_time 90)"),
    ("[bgp]\nconnect_retry = 0\n", "bgp.connect_retry: 0 is out of range 1..65535"),
    ("[bgp]\nconnect_retry_max = 0\n", "bgp.connect_retry_max: 0 is out of range 1..65535"),
    (
        "[bgp]\nconnect_retry = 10\nconnect_retry_max = 5\n",
        "bgp.connect_retry_max: 5 is below connect_retry (10), where it starts",
    ),
    (
        '[[bgp.peer]]\naddress = "10.0.0.2"\nasn = 65000\nconnect_retry_max = 2\n',
        "bgp.peer[0].connect_retry_max: 2 is below bgp.connect_retry (5)",
    ),
    ('[bgp]\nmesh = "yes"\n', 'bgp.mesh: "yes" is a string, expected a boolean'),
    (
        "[bgp]\nlong_lived_stale_time = 16777216\n",
        "bgp.long_lived_stale_time: 16777216 is out of range 0..16777215",
    ),
    (
        "[bgp]\nhonor_graceful_shutdown = 1\n",
        "bgp.honor_graceful_shutdown: 1 is an integer, expected a boolean",
    ),
    (
        '[bgp]\nroute_reflector_cluster_id = "1.2.3"\n',
        'bgp.route_reflector_cluster_id: "1.2.3" is not a cluster ID (a dotted quad or 1..4294967295)',
    ),
    (
        '[bgp]\nroute_reflector_cluster_id = "4294967296"\n',
        'bgp.route_reflector_cluster_id: "4294967296" is not a cluster ID (a dotted quad or 1..4294967295)',
    ),
    (
        '[bgp]\nroute_reflector_cluster_id = "0"\n',
        'bgp.route_reflector_cluster_id: "0" is not a usable cluster ID (0)',
    ),
    (
        "[bgp]\nroute_reflector_cluster_id = 7\n",
        "bgp.route_reflector_cluster_id: 7 is an integer, expected a string",
    ),
    ("[bgp]\nrestart_time = 4096\n", "bgp.restart_time: 4096 is out of range 0..4095"),
    ('[bgp]\nadd_path = "all"\n', 'bgp.add_path: "all" is not one of off | receive | send | both'),
    ("[bgp]\nmax_paths = 0\n", "bgp.max_paths: 0 is out of range 1..1024"),
    ("[bgp]\nmax_prefixes_restart = -1\n", "bgp.max_prefixes_restart: -1 is out of range 0..86400"),
    ("[bgp]\ndeferral_time = 0\n", "bgp.deferral_time: 0 is out of range 1..3600"),
    ("[bgp]\nprot = 179\n", "bgp.prot: unknown key (did you mean port?)"),
    (
        "[bgp]\nlisten = []\n",
        "bgp.listen: [] but the mesh and route reflection need inbound sessions",
    ),
    (
        '[bgp]\nenabled = false\n[[bgp.peer]]\naddress = "10.0.0.9"\nasn = 65000\n',
        "bgp.peer: is not allowed with bgp.enabled = false",
    ),
    (
        '[bgp]\nenabled = false\nroute_reflector_cluster_id = "1.1.1.1"\n',
        "bgp.route_reflector_cluster_id: is not allowed with bgp.enabled = false",
    ),
    (
        '[bgp]\npeer = { address = "10.0.0.9", asn = 1 }\n',
        "bgp.peer: expected an array of tables ([[bgp.peer]])",
    ),
]


def peer(extra: str, address: str = "10.0.0.254") -> str:
    return f'[[bgp.peer]]\naddress = "{address}"\nasn = 65000\n{extra}'


PEER_CASES = [
    (
        "[[bgp.peer]]\nasn = 65000\n",
        "bgp.peer[0].address: is required (or peer_selector, for in-cluster peers chosen by label; or interface, for an unnumbered peer)",
    ),
    ('[[bgp.peer]]\naddress = "10.0.0.9"\n', "bgp.peer[0].asn: is required"),
    (
        peer("", "10.0.0.7")
        + peer("", "10.0.0.8")
        + '[[bgp.peer]]\naddress = "10.0.0.9"\nasn = 4294967296\n',
        "bgp.peer[2].asn: 4294967296 is not an AS number (1..4294967295)",
    ),
    (
        peer("", "fe80::1"),
        'bgp.peer[0].address: "fe80::1" is link-local and needs a zone, e.g. fe80::1%eth0',
    ),
    (peer("", "0.0.0.0"), 'bgp.peer[0].address: "0.0.0.0" is not a unicast address'),
    (peer("", "10.0.0.1"), 'bgp.peer[0].address: "10.0.0.1" is this node\'s own address'),
    (peer("") + peer(""), 'bgp.peer[1].address: "10.0.0.254" is already bgp.peer[0]'),
    (
        peer('local_address = "fd00::1"\n'),
        'bgp.peer[0].local_address: "fd00::1" is IPv6 but the peer is IPv4',
    ),
    (peer('local_address = "x"\n'), 'bgp.peer[0].local_address: "x" is not an IP address'),
    (peer("port = 0\n"), "bgp.peer[0].port: 0 is not a port (1..65535)"),
    (
        peer(f'password = "{"s" * 81}"\n'),
        "bgp.peer[0].password: 81 bytes is longer than 80 (TCP_MD5SIG_MAXKEYLEN)",
    ),
    (
        peer('password = "é' + "s" * 79 + '"\n'),
        "bgp.peer[0].password: 81 bytes is longer than 80 (TCP_MD5SIG_MAXKEYLEN)",
    ),
    (peer("ttl_security = 255\n"), "bgp.peer[0].ttl_security: 255 is out of range 0..254"),
    (peer("multihop = 0\n"), "bgp.peer[0].multihop: 0 is out of range 1..255"),
    (peer("multihop = 256\n"), "bgp.peer[0].multihop: 256 is out of range 1..255"),
    (
        peer("ttl_security = 1\nmultihop = 2\n"),
        "bgp.peer[0].ttl_security: cannot be combined with multihop (GTSM sends with TTL 255, RFC 5082)",
    ),
    (peer('bfd = "yes"\n'), 'bgp.peer[0].bfd: "yes" is a string, expected a boolean'),
    (peer("bfd_interval_ms = 9\n"), "bgp.peer[0].bfd_interval_ms: 9 is out of range 10..60000"),
    (peer("bfd_multiplier = 0\n"), "bgp.peer[0].bfd_multiplier: 0 is out of range 1..255"),
    (
        peer("bfd = true\nmultihop = 2\n"),
        "bgp.peer[0].bfd: needs a directly connected peer (multihop = 1): BFD here is single hop (RFC 5881)",
    ),
    (peer("families = []\n"), "bgp.peer[0].families: [] must list ipv4 and/or ipv6 once each"),
    (
        peer('families = ["ipv4", "ipv4"]\n'),
        'bgp.peer[0].families: ["ipv4", "ipv4"] must list ipv4 and/or ipv6 once each',
    ),
    (
        peer('families = ["ipv4", "ipv5"]\n'),
        'bgp.peer[0].families[1]: "ipv5" is not one of ipv4 | ipv6',
    ),
    (peer("families = [4]\n"), "bgp.peer[0].families[0]: 4 is an integer, expected a string"),
    (peer('import = "local"\n'), 'bgp.peer[0].import: "local" applies to export only'),
    (
        peer('import = "tor-in"\n'),
        'bgp.peer[0].import: "tor-in" is neither "all" | "none" nor the name of a [[policy]]',
    ),
    (
        peer('export = "tor-out"\n'),
        'bgp.peer[0].export: "tor-out" is neither "all" | "none" | "local" nor the name of a [[policy]]',
    ),
    (peer("max_prefixes = -1\n"), "bgp.peer[0].max_prefixes: -1 is out of range 0..4294967295"),
    (
        peer(f'shutdown_message = "{"m" * 256}"\n'),
        "bgp.peer[0].shutdown_message: 256 bytes is longer than 255 (RFC 9003)",
    ),
    (
        peer("hold_time = 1\n"),
        "bgp.peer[0].hold_time: 1 is not a hold time (0, or 3..65535; RFC 4271 §4.2)",
    ),
    (
        peer("hold_time = 9\nkeepalive = 9\n"),
        "bgp.peer[0].keepalive: 9 must be 1..8 (below hold_time 9)",
    ),
    (peer("keepalive = 90\n"), "bgp.peer[0].keepalive: 90 must be 1..89 (below hold_time 90)"),
    (
        peer('add_path = "yes"\n'),
        'bgp.peer[0].add_path: "yes" is not one of off | receive | send | both',
    ),
    (
        peer("add_path_send_max = -1\n"),
        "bgp.peer[0].add_path_send_max: -1 is out of range 0..65535",
    ),
    (peer('passive = "true"\n'), 'bgp.peer[0].passive: "true" is a string, expected a boolean'),
    (peer('pasword = "x"\n'), "bgp.peer[0].pasword: unknown key (did you mean password?)"),
    (
        '[bgp]\nroute_reflector_cluster_id = "1.1.1.1"\n' + peer("route_reflector_client = true\n"),
        "bgp.peer[0].route_reflector_client: AS 65000 is not this node's AS 64512; clients are iBGP peers (RFC 4456)",
    ),
    (
        "[bgp]\nlisten = []\nmesh = false\n" + peer("passive = true\n"),
        "bgp.peer[0].passive: true but bgp.listen is [], so it could never connect",
    ),
]

ORIGINATE_CASES = [
    ('[[bgp.originate]]\nnext_hop = "self"\n', "bgp.originate[0].prefix: is required"),
    (
        '[[bgp.originate]]\nprefix = "10.96.0.1/12"\n',
        'bgp.originate[0].prefix: "10.96.0.1/12" has host bits set (did you mean 10.96.0.0/12?)',
    ),
    (
        '[[bgp.originate]]\nprefix = "10.96.0.0/40"\n',
        'bgp.originate[0].prefix: "10.96.0.0/40" is not an IP prefix',
    ),
    (
        '[[bgp.originate]]\nprefix = "10.96.0.0/12"\ncommunities = ["1:70000"]\n',
        'bgp.originate[0].communities[0]: "1:70000" is not a community (A:B, each 0..65535)',
    ),
    (
        '[[bgp.originate]]\nprefix = "10.96.0.0/12"\nlarge_communities = ["1:2"]\n',
        'bgp.originate[0].large_communities[0]: "1:2" is not a large community (A:B:C, each 0..4294967295)',
    ),
    (
        '[[bgp.originate]]\nprefix = "10.96.0.0/12"\nnext_hop = "fd00::1"\n',
        'bgp.originate[0].next_hop: "fd00::1" is IPv6 but the prefix is IPv4',
    ),
    (
        '[[bgp.originate]]\nprefix = "10.96.0.0/12"\nnext_hop = "keep"\n',
        'bgp.originate[0].next_hop: "keep" is not self or an IP address',
    ),
]

LISTEN_RANGE_CASES = [
    ("[[bgp.listen_range]]\nasn = 65000\n", "bgp.listen_range[0].prefix: is required"),
    ('[[bgp.listen_range]]\nprefix = "10.0.0.0/24"\n', "bgp.listen_range[0].asn: is required"),
    (
        '[[bgp.listen_range]]\nprefix = "10.0.0.1/24"\nasn = 65000\n',
        'bgp.listen_range[0].prefix: "10.0.0.1/24" has host bits set (did you mean 10.0.0.0/24?)',
    ),
    (
        '[[bgp.listen_range]]\nprefix = "10.0.0.0/24"\nasn = 65000\n[[bgp.listen_range]]\nprefix = "10.0.0.128/25"\nasn = 65001\n',
        'bgp.listen_range[1].prefix: "10.0.0.128/25" overlaps bgp.listen_range[0]',
    ),
    (
        '[[bgp.listen_range]]\nprefix = "10.0.0.0/24"\nasn = 65000\npassive = false\n',
        "bgp.listen_range[0].passive: false is impossible: dynamic neighbours are only accepted",
    ),
    (
        '[[bgp.listen_range]]\nprefix = "10.0.0.0/24"\nasn = 65000\naddress = "10.0.0.5"\n',
        "bgp.listen_range[0].address: is for [[bgp.peer]]; a listen range has a prefix",
    ),
    (
        '[bgp]\nlisten = []\nmesh = false\n[[bgp.listen_range]]\nprefix = "10.0.0.0/24"\nasn = 65000\n',
        "bgp.listen_range: dynamic neighbours need bgp.listen (it is [])",
    ),
    (
        '[[bgp.listen_range]]\nprefix = "10.0.0.0/24"\nasn = 65000\nmultihop = 300\n',
        "bgp.listen_range[0].multihop: 300 is out of range 1..255",
    ),
]


def rule(text: str) -> str:
    return f'[[policy]]\nname = "p"\n[[policy.rule]]\n{text}\n'


POLICY_CASES = [
    ('[[policy]]\ndefault_action = "accept"\n', "policy[0].name: is required"),
    (
        '[[policy]]\nname = "all"\n',
        'policy[0].name: "all" is reserved (all | none | local mean themselves in import/export)',
    ),
    ('[[policy]]\nname = ""\n', "policy[0].name: must not be empty"),
    (
        '[[policy]]\nname = "p"\n[[policy]]\nname = "p"\n',
        'policy[1].name: "p" is already policy[0]',
    ),
    (
        '[[policy]]\nname = "p"\ndefault_action = "maybe"\n',
        'policy[0].default_action: "maybe" is not one of accept | reject',
    ),
    (rule('action = "drop"'), 'policy[0].rule[0].action: "drop" is not one of accept | reject'),
    (
        rule('match = { prefix = "10.0.0.1/8" }'),
        'policy[0].rule[0].match.prefix: "10.0.0.1/8" has host bits set (did you mean 10.0.0.0/8?)',
    ),
    (rule("match = { ge = 24 }"), "policy[0].rule[0].match.ge: 24 needs match.prefix"),
    (rule("match = { le = 24 }"), "policy[0].rule[0].match.le: 24 needs match.prefix"),
    (
        rule('match = { prefix = "10.0.0.0/16", ge = 8 }'),
        "policy[0].rule[0].match.ge: 8 is not within 16..32 (the length of 10.0.0.0/16 up to /32)",
    ),
    (
        rule('match = { prefix = "10.0.0.0/16", le = 33 }'),
        "policy[0].rule[0].match.le: 33 is not within 16..32 (the length of 10.0.0.0/16 up to /32)",
    ),
    (
        rule('match = { prefix = "fd00::/48", le = 129 }'),
        "policy[0].rule[0].match.le: 129 is out of range 0..128",
    ),
    (
        rule('match = { prefix = "10.0.0.0/16", ge = 28, le = 24 }'),
        "policy[0].rule[0].match.le: 24 is below ge 28",
    ),
    (
        rule('match = { community = "64512" }'),
        'policy[0].rule[0].match.community: "64512" is not a community (A:B, each 0..65535)',
    ),
    (
        rule('match = { large_community = "1:2:x" }'),
        'policy[0].rule[0].match.large_community: "1:2:x" is not a large community (A:B:C, each 0..4294967295)',
    ),
    (
        rule('match = { large_community = "1:2:4294967296" }'),
        'policy[0].rule[0].match.large_community: "1:2:4294967296" is not a large community (A:B:C, each 0..4294967295)',
    ),
    (
        rule('match = { as_path = "(" }'),
        'policy[0].rule[0].match.as_path: "(" is not a regular expression: missing ), unterminated subpattern at position 0',
    ),
    (
        rule('match = { family = "ipv7" }'),
        'policy[0].rule[0].match.family: "ipv7" is not one of ipv4 | ipv6',
    ),
    (
        rule('match = { neighbor = "10.0.0.1/24" }'),
        'policy[0].rule[0].match.neighbor: "10.0.0.1/24" has host bits set (did you mean 10.0.0.0/24?)',
    ),
    (
        rule('match = { origin = "bgp" }'),
        'policy[0].rule[0].match.origin: "bgp" is not one of igp | egp | incomplete',
    ),
    (
        rule('match = { prefx = "10.0.0.0/8" }'),
        "policy[0].rule[0].match.prefx: unknown key (did you mean prefix?)",
    ),
    (
        rule('match = "10.0.0.0/8"'),
        'policy[0].rule[0].match: "10.0.0.0/8" is a string, expected a table',
    ),
    (
        rule("set = { local_pref = -1 }"),
        "policy[0].rule[0].set.local_pref: -1 is out of range 0..4294967295",
    ),
    (
        rule("set = { med = 4294967296 }"),
        "policy[0].rule[0].set.med: 4294967296 is out of range 0..4294967295",
    ),
    (
        rule('set = { community_add = ["x"] }'),
        'policy[0].rule[0].set.community_add[0]: "x" is not a community (A:B, each 0..65535)',
    ),
    (
        rule('set = { community_remove = ["1:2:3"] }'),
        'policy[0].rule[0].set.community_remove[0]: "1:2:3" is not a community (A:B, each 0..65535)',
    ),
    (
        rule('set = { large_community_add = ["1:2"] }'),
        'policy[0].rule[0].set.large_community_add[0]: "1:2" is not a large community (A:B:C, each 0..4294967295)',
    ),
    (
        rule("set = { as_path_prepend = 33 }"),
        "policy[0].rule[0].set.as_path_prepend: 33 is out of range 0..32",
    ),
    (
        rule('set = { next_hop = "elsewhere" }'),
        'policy[0].rule[0].set.next_hop: "elsewhere" is not self | keep or an IP address',
    ),
    (
        rule("set = { localpref = 100 }"),
        "policy[0].rule[0].set.localpref: unknown key (did you mean local_pref?)",
    ),
    (
        rule('action = "reject"\nset = { med = 5 }'),
        "policy[0].rule[0].set: has no effect on a rejected route",
    ),
    ('[policy]\nname = "p"\n', "policy: expected an array of tables ([[policy]])"),
]

DATASTORE_CASES = [
    ('[datastore]\nkind = "redis"\n', 'datastore.kind: "redis" is not one of sqlite | etcd'),
    ('[datastore]\npath = ""\n', "datastore.path: must not be empty (the SQLite file)"),
    (
        '[datastore]\nkind = "etcd"\nendpoints = []\n',
        'datastore.endpoints: must list at least one endpoint with kind = "etcd"',
    ),
    (
        '[datastore]\nkind = "etcd"\nendpoints = ["127.0.0.1:2379"]\n',
        'datastore.endpoints[0]: "127.0.0.1:2379" is not an etcd endpoint'
        " (http://host:port or https://host:port)",
    ),
    (
        '[datastore]\nkind = "etcd"\nendpoints = ["https://10.0.0.2:2379/v3?x=1"]\n',
        'datastore.endpoints[0]: "https://10.0.0.2:2379/v3?x=1": an etcd endpoint is'
        " scheme://host:port, nothing after it",
    ),
    (
        '[datastore]\nkind = "etcd"\nendpoints = ["https://10.0.0.2:2379", "http://10.0.0.3:2379"]\n',
        "datastore.endpoints: mix http:// and https://: TLS is for all members or none",
    ),
    (
        '[datastore]\nkind = "etcd"\nendpoints = ["http://10.0.0.2:2379"]\nca_file = "/etc/ca.pem"\n',
        "datastore.ca_file: is for https:// endpoints; these are http://",
    ),
    (
        '[datastore]\nkind = "etcd"\nendpoints = ["https://10.0.0.2:2379"]\ncert_file = "/c.pem"\n',
        "datastore.key_file: is needed with cert_file",
    ),
    (
        '[datastore]\nkind = "etcd"\nendpoints = ["https://10.0.0.2:2379"]\nkey_file = "/k.pem"\n',
        "datastore.cert_file: is needed with key_file",
    ),
    (
        '[datastore]\nkind = "etcd"\nendpoints = ["https://10.0.0.2:2379"]\nca_file = 1\n',
        "datastore.ca_file: 1 is an integer, expected a string",
    ),
    (
        '[datastore]\nkind = "etcd"\nendpoints = ["http://h:99999"]\n',
        'datastore.endpoints[0]: "http://h:99999" is not an etcd endpoint URL',
    ),
    (
        "[datastore]\nendpoints = [2379]\n",
        "datastore.endpoints[0]: 2379 is an integer, expected a string",
    ),
    ('[datastore]\nurl = "x"\n', "datastore.url: unknown key"),
]


def pool(text: str, cidr: str = "10.244.0.0/16") -> str:
    return f'[[ipam.pool]]\ncidr = "{cidr}"\n{text}\n'


IPAM_CASES = [
    ("[[ipam.pool]]\nblock_size = 26\n", "ipam.pool[0].cidr: is required"),
    (
        pool("", "10.244.0.1/16"),
        'ipam.pool[0].cidr: "10.244.0.1/16" has host bits set (did you mean 10.244.0.0/16?)',
    ),
    (
        pool("block_size = 15"),
        "ipam.pool[0].block_size: 15 is not within 16..32 (pool 10.244.0.0/16)",
    ),
    (
        pool("block_size = 33"),
        "ipam.pool[0].block_size: 33 is not within 16..32 (pool 10.244.0.0/16)",
    ),
    (pool("block_size = 129", "fd00::/48"), "ipam.pool[0].block_size: 129 is out of range 0..128"),
    (
        pool('ipip_mode = "Sometimes"'),
        'ipam.pool[0].ipip_mode: "Sometimes" is not one of Never | Always | CrossSubnet',
    ),
    (
        pool('ipip_mode = "always"'),
        'ipam.pool[0].ipip_mode: "always" is not one of Never | Always | CrossSubnet',
    ),
    (
        pool('ipip_mode = "Always"\nvxlan_mode = "CrossSubnet"'),
        'ipam.pool[0].vxlan_mode: "CrossSubnet" cannot be combined with ipip_mode "Always"',
    ),
    (
        pool('ipip_mode = "Always"', "fd00::/48"),
        'ipam.pool[0].ipip_mode: "Always" is for IPv4 pools only (fd00::/48 is IPv6)',
    ),
    (
        pool("") + pool("", "10.244.128.0/17"),
        'ipam.pool[1].cidr: "10.244.128.0/17" overlaps ipam.pool[0] ("10.244.0.0/16")',
    ),
    (
        pool('node_selector = ""'),
        'ipam.pool[0].node_selector: must not be empty ("all()" selects every node)',
    ),
    (
        pool('nat_outgoing = "yes"'),
        'ipam.pool[0].nat_outgoing: "yes" is a string, expected a boolean',
    ),
    (pool("blocksize = 26"), "ipam.pool[0].blocksize: unknown key (did you mean block_size?)"),
    (
        "[ipam]\nmax_blocks_per_node = -1\n",
        "ipam.max_blocks_per_node: -1 is out of range 0..4294967295",
    ),
    ("[ipam]\nstrict_affinity = 1\n", "ipam.strict_affinity: 1 is an integer, expected a boolean"),
    (
        pool('vxlan_mode = "Always"', "fd00:244::/48"),
        'ipam.pool[0].vxlan_mode: "Always" needs node.address6 (the tunnel underlay)',
    ),
    (
        "[bgp]\nenabled = false\n" + pool('ipip_mode = "CrossSubnet"'),
        "ipam.pool[0].ipip_mode: IP-in-IP routes come from BGP; bgp.enabled is false (use vxlan_mode)",
    ),
]

FIB_API_CASES = [
    ("[fib]\ntable = 0\n", "fib.table: 0 is out of range 1..4294967295"),
    ("[fib]\ntable = 4294967296\n", "fib.table: 4294967296 is out of range 1..4294967295"),
    ("[fib]\nprotocol = 0\n", "fib.protocol: 0 is not an rtm_protocol (5..255)"),
    ("[fib]\nprotocol = 256\n", "fib.protocol: 256 is not an rtm_protocol (5..255)"),
    (
        "[fib]\nprotocol = 2\n",
        "fib.protocol: 2 is used by kernel routes, which podbgp would then delete as its own; pick an unused number such as 80",
    ),
    (
        "[fib]\nprotocol = 4\n",
        "fib.protocol: 4 is used by static (kernel) routes, which podbgp would then delete as its own; pick an unused number such as 80",
    ),
    (
        "[fib]\nprotocol = 12\n",
        "fib.protocol: 12 is used by bird routes, which podbgp would then delete as its own; pick an unused number such as 80",
    ),
    (
        "[fib]\nprotocol = 186\n",
        "fib.protocol: 186 is used by bgp (FRR) routes, which podbgp would then delete as its own; pick an unused number such as 80",
    ),
    ("[fib]\nresync_interval = -1\n", "fib.resync_interval: -1 is out of range 0..86400"),
    ('[fib]\nenabled = "no"\n', 'fib.enabled: "no" is a string, expected a boolean'),
    ("[fib]\nnexthops = 1\n", "fib.nexthops: 1 is an integer, expected a boolean"),
    ('[api]\nsocket = ""\n', "api.socket: must not be empty"),
    (
        f'[api]\nsocket = "/{"s" * 107}"\n',
        f'api.socket: "/{"s" * 107}" is longer than 107 bytes (unix socket limit)',
    ),
    (
        '[api]\nmetrics = "localhost"\n',
        'api.metrics: "localhost" is not host:port (or "" to turn metrics off)',
    ),
    (
        '[api]\nmetrics = "127.0.0.1:70000"\n',
        'api.metrics: "127.0.0.1:70000" is not host:port (or "" to turn metrics off)',
    ),
    (
        '[api]\nmetrics = ":9469"\n',
        'api.metrics: ":9469" is not host:port (or "" to turn metrics off)',
    ),
    ('[api]\nmetrics = "::1"\n', 'api.metrics: "::1" is not host:port ([v6]:port for IPv6)'),
    ("[api]\nmetrics = 9469\n", "api.metrics: 9469 is an integer, expected a string"),
    ("[bgpp]\nport = 1\n", "bgpp: unknown key (did you mean bgp?)"),
]


def _ids(cases: list[tuple[str, str]]) -> list[str]:
    return [message.split(":")[0] for _, message in cases]


@pytest.mark.parametrize(("text", "message"), NODE_CASES, ids=_ids(NODE_CASES))
def test_node_errors(text: str, message: str) -> None:
    assert errors_of(text) == [message]


@pytest.mark.parametrize(
    ("text", "message"),
    BGP_CASES + PEER_CASES + ORIGINATE_CASES + LISTEN_RANGE_CASES,
    ids=_ids(BGP_CASES + PEER_CASES + ORIGINATE_CASES + LISTEN_RANGE_CASES),
)
def test_bgp_errors(text: str, message: str) -> None:
    assert errors_of(NODE + text) == [message]


@pytest.mark.parametrize(("text", "message"), POLICY_CASES, ids=_ids(POLICY_CASES))
def test_policy_errors(text: str, message: str) -> None:
    assert errors_of(NODE + text) == [message]


@pytest.mark.parametrize(
    ("text", "message"),
    DATASTORE_CASES + IPAM_CASES + FIB_API_CASES,
    ids=_ids(DATASTORE_CASES + IPAM_CASES + FIB_API_CASES),
)
def test_datastore_ipam_fib_api_errors(text: str, message: str) -> None:
    assert errors_of(NODE + text) == [message]


def test_encapsulation_needs_node_address() -> None:
    text = node(address="DROP", router_id='"10.0.0.1"') + "[bgp]\nmesh = false\n"
    text += pool('vxlan_mode = "CrossSubnet"')
    assert errors_of(text) == [
        'ipam.pool[0].vxlan_mode: "CrossSubnet" needs node.address (the tunnel underlay)'
    ]


def test_password_is_never_echoed() -> None:
    secret = "hunter2-" + "x" * 80
    (message,) = errors_of(NODE + peer(f'password = "{secret}"\n'))
    assert "hunter2" not in message


def test_toml_syntax_error_names_the_source() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text("[node\nname = 1\n", source="node.toml")
    (message,) = info.value.errors
    assert message.startswith("node.toml: not valid TOML: ")
    assert "line 1" in message


def test_duplicate_key_is_a_toml_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(NODE + "[bgp]\nport = 1\nport = 2\n", source="x.toml")
    assert info.value.errors[0].startswith("x.toml: not valid TOML:")


def test_all_errors_are_collected_in_section_order() -> None:
    text = (
        node(asn="0")
        + "[bgp]\nhold_time = 1\n"
        + peer("multihop = 0\n")
        + rule('match = { community = "x" }')
        + '[datastore]\nkind = "zk"\n'
        + pool("block_size = 8")
        + "[fib]\nprotocol = 3\n"
        + '[api]\nmetrics = "x"\n'
        + "[extra]\n"
    )
    found = errors_of(text)
    heads = [m.split(":")[0] for m in found]
    assert heads == [
        "node.asn",
        "bgp.hold_time",
        "bgp.peer[0].multihop",
        "policy[0].rule[0].match.community",
        "datastore.kind",
        "ipam.pool[0].block_size",
        "fib.protocol",
        "api.metrics",
        "extra",
    ]
    with pytest.raises(ConfigError) as info:
        load_config_text(text)
    assert str(info.value) == "\n".join(found)


def test_a_broken_policy_is_still_a_valid_reference() -> None:
    # The peer names a policy that exists but has a mistake: only the mistake is reported.
    text = NODE + peer('export = "p"\n') + rule("set = { med = -5 }")
    assert errors_of(text) == ["policy[0].rule[0].set.med: -5 is out of range 0..4294967295"]
