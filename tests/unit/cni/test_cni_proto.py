"""CNI protocol handling without a kernel: environment, errors, versions, result shape."""

from __future__ import annotations

import ipaddress

import pytest

from podbgp.cni_net import GATEWAYS, host_ifname
from podbgp.cni_proto import (
    SUPPORTED_VERSIONS,
    Attachment,
    CniError,
    ErrorCode,
    check_ifname,
    check_version,
    parse_cni_args,
    parse_env,
    result_addresses,
    version_allows_check,
    version_reply,
)

FULL = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "abc123",
    "CNI_NETNS": "/var/run/netns/x",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin:/usr/lib/cni",
    "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
}


def env_without(*names: str, **changes: str) -> dict[str, str]:
    out = {k: v for k, v in FULL.items() if k not in names}
    out.update(changes)
    return out


def test_full_environment_is_parsed() -> None:
    env = parse_env(FULL)
    assert env.command == "ADD"
    assert env.container_id == "abc123"
    assert env.netns == "/var/run/netns/x"
    assert env.ifname == "eth0"
    assert env.path == ("/opt/cni/bin", "/usr/lib/cni")
    assert env.pod_namespace == "default"
    assert env.pod_name == "web-0"
    assert env.args["IgnoreUnknown"] == "1"


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        ("ADD", "CNI_NETNS"),
        ("ADD", "CNI_CONTAINERID"),
        ("ADD", "CNI_IFNAME"),
        ("CHECK", "CNI_NETNS"),
        ("DEL", "CNI_CONTAINERID"),
        ("DEL", "CNI_IFNAME"),
    ],
)
def test_missing_required_variable_is_code_4_naming_it(command: str, missing: str) -> None:
    with pytest.raises(CniError) as e:
        parse_env(env_without(missing, CNI_COMMAND=command))
    assert e.value.code == ErrorCode.INVALID_ENVIRONMENT
    assert missing in e.value.msg


def test_del_without_netns_is_valid() -> None:
    """SPEC.md: CNI_NETNS is optional for DEL (the namespace may be gone)."""
    env = parse_env(env_without("CNI_NETNS", CNI_COMMAND="DEL"))
    assert env.netns == ""


def test_version_needs_only_the_command() -> None:
    assert parse_env({"CNI_COMMAND": "VERSION"}).command == "VERSION"


@pytest.mark.parametrize("command", ["", "add", "GC", "STATUS", "FOO"])
def test_unknown_command_is_code_4(command: str) -> None:
    with pytest.raises(CniError) as e:
        parse_env(env_without(CNI_COMMAND=command))
    assert e.value.code == ErrorCode.INVALID_ENVIRONMENT
    assert "CNI_COMMAND" in e.value.msg


@pytest.mark.parametrize("cid", ["-abc", "a/b", "a b", "_x", "a:b"])
def test_bad_container_id_is_code_4(cid: str) -> None:
    with pytest.raises(CniError) as e:
        parse_env(env_without(CNI_CONTAINERID=cid))
    assert e.value.code == ErrorCode.INVALID_ENVIRONMENT
    assert "CNI_CONTAINERID" in e.value.msg


@pytest.mark.parametrize("cid", ["a", "0123abc", "a.b_c-d", "K8S.pod-1_x"])
def test_good_container_ids(cid: str) -> None:
    assert parse_env(env_without(CNI_CONTAINERID=cid)).container_id == cid


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("eth0", True),
        ("net1", True),
        ("a" * 15, True),
        ("a" * 16, False),
        ("", False),
        (".", False),
        ("..", False),
        ("a/b", False),
        ("a:b", False),
        ("a b", False),
        ("a\tb", False),
    ],
)
def test_interface_name_rules(name: str, ok: bool) -> None:
    assert (check_ifname(name) is None) == ok


def test_bad_ifname_is_code_4() -> None:
    with pytest.raises(CniError) as e:
        parse_env(env_without(CNI_IFNAME="x" * 16))
    assert e.value.code == ErrorCode.INVALID_ENVIRONMENT
    assert "CNI_IFNAME" in e.value.msg


def test_cni_args_pairs() -> None:
    assert parse_cni_args("A=1;B=two;;C=") == {"A": "1", "B": "two", "C": ""}
    assert parse_cni_args("") == {}
    assert parse_cni_args("IP=10.0.0.1,fd00::1") == {"IP": "10.0.0.1,fd00::1"}


@pytest.mark.parametrize("text", ["novalue", "=x", "A=1;broken"])
def test_malformed_cni_args_is_code_4(text: str) -> None:
    with pytest.raises(CniError) as e:
        parse_cni_args(text)
    assert e.value.code == ErrorCode.INVALID_ENVIRONMENT
    assert "CNI_ARGS" in e.value.msg


def test_error_json_shape() -> None:
    err = CniError(ErrorCode.INVALID_CONFIG, "name: required", "more")
    assert err.to_json("0.4.0") == {
        "cniVersion": "0.4.0",
        "code": 7,
        "msg": "name: required",
        "details": "more",
    }
    assert "details" not in CniError(ErrorCode.TRY_AGAIN_LATER, "x").to_json()


def test_error_codes_are_the_specs() -> None:
    assert [int(c) for c in ErrorCode] == [1, 2, 3, 4, 5, 6, 7, 11, 999]


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_supported_versions_pass(version: str) -> None:
    assert check_version(version) == version


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "1.1.0", "2.0.0", "1.0"])
def test_unsupported_version_is_code_1(version: str) -> None:
    with pytest.raises(CniError) as e:
        check_version(version)
    assert e.value.code == ErrorCode.INCOMPATIBLE_VERSION
    assert version in e.value.msg


@pytest.mark.parametrize("version", [None, "", 1])
def test_missing_version_is_code_7(version: object) -> None:
    with pytest.raises(CniError) as e:
        check_version(version)
    assert e.value.code == ErrorCode.INVALID_CONFIG


def test_version_reply() -> None:
    assert version_reply("0.4.0") == {
        "cniVersion": "0.4.0",
        "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0"],
    }
    assert version_reply("9.9.9")["cniVersion"] == "1.0.0"
    assert version_reply(None)["cniVersion"] == "1.0.0"


def test_check_arrived_in_0_4_0() -> None:
    assert not version_allows_check("0.3.1")
    assert version_allows_check("0.4.0")
    assert version_allows_check("1.0.0")


def attachment() -> Attachment:
    return Attachment(
        host_ifname="cali0123456789a",
        host_mac="ee:ee:ee:ee:ee:ee",
        pod_ifname="eth0",
        pod_mac="02:00:00:00:00:01",
        sandbox="/var/run/netns/p",
        addresses=(
            ipaddress.ip_interface("10.244.0.5/32"),
            ipaddress.ip_interface("fd00::5/128"),
        ),
        gateways=GATEWAYS,
        dns={"nameservers": ["10.96.0.10"]},
    )


def test_result_1_0_0_shape() -> None:
    assert attachment().to_result("1.0.0") == {
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "cali0123456789a", "mac": "ee:ee:ee:ee:ee:ee"},
            {"name": "eth0", "mac": "02:00:00:00:00:01", "sandbox": "/var/run/netns/p"},
        ],
        "ips": [
            {"address": "10.244.0.5/32", "gateway": "169.254.1.1", "interface": 1},
            {"address": "fd00::5/128", "gateway": "fe80::ecee:eeff:feee:eeee", "interface": 1},
        ],
        "routes": [
            {"dst": "0.0.0.0/0", "gw": "169.254.1.1"},
            {"dst": "::/0", "gw": "fe80::ecee:eeff:feee:eeee"},
        ],
        "dns": {"nameservers": ["10.96.0.10"]},
    }


def test_result_before_1_0_0_names_the_ip_version() -> None:
    ips = attachment().to_result("0.4.0")["ips"]
    assert [ip["version"] for ip in ips] == ["4", "6"]


def test_prev_result_addresses_of_the_pod_interface_only() -> None:
    prev = attachment().to_result("1.0.0")
    prev["interfaces"].append({"name": "net1", "sandbox": "/var/run/netns/p"})
    prev["ips"].append({"address": "192.168.9.9/24", "interface": 2})
    got = result_addresses(prev, "eth0")
    assert [str(a) for a in got] == ["10.244.0.5/32", "fd00::5/128"]


def test_unreadable_prev_result_is_code_7() -> None:
    with pytest.raises(CniError) as e:
        result_addresses({"ips": [{"address": "not-an-ip"}]}, "eth0")
    assert e.value.code == ErrorCode.INVALID_CONFIG


def test_host_ifname_fits_ifnamsiz_and_is_stable() -> None:
    names = {host_ifname(f"container-{i}") for i in range(1000)}
    assert len(names) == 1000
    assert all(len(n) == 15 and n.startswith("cali") for n in names)
    assert host_ifname("abc") == host_ifname("abc")
