import time

from podbgp.lab.netns import NetnsGroup, list_namespaces


def test_veth_ping_and_cleanup(netns: NetnsGroup) -> None:
    a, b = netns.add("a"), netns.add("b")
    netns.veth(a, "eth0", b, "eth0")
    a.ip("addr", "add", "10.99.0.1/24", "dev", "eth0")
    b.ip("addr", "add", "10.99.0.2/24", "dev", "eth0")
    out = a.run("ping", "-c1", "-W2", "10.99.0.2")
    assert "1 received" in out
    sleeper = b.popen(["sleep", "60"])
    # `ip netns exec` enters the namespace, then execs: the pid shows there a moment later.
    deadline = time.monotonic() + 10
    while sleeper.pid not in b.pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sleeper.pid in b.pids()
    netns.close()
    assert list_namespaces(netns.prefix) == []
    assert sleeper.poll() is not None
