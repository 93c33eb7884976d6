"""TLS to etcd in the datastore URL: ``etcd:https://...?ca=CA&cert=CERT&key=KEY``.

The URL is the one currency of a datastore across the CLI, the CNI plugin's configuration
and the daemon, so the TLS files travel in it: `[datastore]` → URL → store → URL is the
identity, `podbgp advise`'s snippet of a URL reads back as the same `[datastore]`, and
every malformed option is a one-line error.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ipam.store import StoreError, open_store
from ipam.store.etcd import EtcdStore, TlsFiles
from podbgp import wiring
from podbgp.cmd_advise import _datastore_lines
from podbgp.config import load_config_text

NODE = '[node]\nname = "n1"\nasn = 64512\naddress = "10.0.0.1/24"\n'


def test_files_round_trip_through_the_query() -> None:
    odd = TlsFiles("/etc/pki/ca bundle.pem", "/x/a&b=c.pem", "/x/key#1.pem")
    assert TlsFiles.from_query(odd.query[1:]) == odd
    assert TlsFiles().query == "" and TlsFiles.from_query("") == TlsFiles()
    assert TlsFiles("/ca.pem").query == "?ca=/ca.pem"


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("etcd:https://h:2379?ca=/a&crt=/b", "unknown option 'crt'"),
        ("etcd:https://h:2379?ca", "expected ca=PATH&cert=PATH&key=PATH"),
        ("etcd:http://a:2379,https://b:2379", "mix http:// and https://"),
        ("etcd:http://a:2379?ca=/ca.pem", "are for https:// endpoints"),
        ("etcd:ftp://a:2379", "the scheme must be http:// or https://"),
        ("etcd:https://a:2379?cert=/c.pem", "needs its key"),
    ],
)
def test_bad_urls_are_one_line_errors(url: str, error: str) -> None:
    with pytest.raises(StoreError, match=error) as info:
        open_store(url)
    assert "\n" not in str(info.value)


def test_https_without_files_trusts_the_system_cas() -> None:
    store = open_store("etcd:https://etcd.example:2379")
    assert isinstance(store, EtcdStore) and store.url == "etcd:https://etcd.example:2379"


def test_config_to_url_to_advice_and_back(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ds = ('[datastore]\nkind = "etcd"\nendpoints = ["https://10.0.0.5:2379", "https://10.0.0.6:2379"]\n'
          f'ca_file = "{ca}"\ncert_file = "/etc/podbgp/n1.pem"\nkey_file = "/etc/podbgp/n1.key"\n')  # fmt: skip
    config = load_config_text(NODE + ds)
    url = wiring.datastore_url(config)
    assert url == (f"etcd:https://10.0.0.5:2379,https://10.0.0.6:2379?ca={ca}"
                   "&cert=/etc/podbgp/n1.pem&key=/etc/podbgp/n1.key")  # fmt: skip
    snippet = "\n".join(_datastore_lines(url)) + "\n"
    again = load_config_text(NODE + snippet)
    assert again.datastore == config.datastore
