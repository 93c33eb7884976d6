"""Route policy: ordered rules, first match wins (CONFIG.md ``[[policy]]``).

A ``Policy`` judges one route: its family and prefix key, its (immutable)
``PathAttributes``, whether it is locally originated and which peer it came
from. The verdict is ``None`` (rejected) or a ``Verdict`` with the possibly
changed attributes and a next-hop directive for export ("self", "keep" or an
address). Nothing is mutated; ``set`` actions build new attribute sets, which
the RIB interns, so a table of a million routes still shares a few thousand.

Policies whose rules never look at the prefix (``prefix_dependent`` false)
give the same verdict for every prefix carrying the same attributes, so the
RIB evaluates them once per attribute set and caches the result
(DESIGN.md performance rule 1).

Built-ins: ``all`` accepts everything, ``none`` rejects everything, ``local``
accepts only locally originated routes (own blocks, borrowed /32s,
``[[bgp.originate]]``).

Communities are RFC 1997 32-bit values written ``A:B`` or a well-known name
(``bgp.wire.constants.WELL_KNOWN_COMMUNITIES``: ``no-export``, ``no-advertise``,
``no-export-subconfed``, ``no-peer``, ``blackhole``, ``graceful-shutdown``,
``accept-own``, ``llgr-stale``, ``no-llgr``);
large communities are RFC 8092 triples ``A:B:C``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

from bgp.wire.attributes import PathAttributes, as_path_str
from bgp.wire.constants import WELL_KNOWN_COMMUNITIES, Family, Origin, WellKnownCommunity

__all__ = [
    "NO_ADVERTISE",
    "NO_EXPORT",
    "NO_EXPORT_SUBCONFED",
    "Decision",
    "Match",
    "Policy",
    "PolicyError",
    "Rule",
    "SetActions",
    "Verdict",
    "builtin",
    "neighbor_condition",
    "parse_community",
    "parse_large_community",
    "prefix_condition",
]

NO_EXPORT = int(WellKnownCommunity.NO_EXPORT)
NO_ADVERTISE = int(WellKnownCommunity.NO_ADVERTISE)
NO_EXPORT_SUBCONFED = int(WellKnownCommunity.NO_EXPORT_SUBCONFED)
Address = IPv4Address | IPv6Address
NextHopDirective = str | Address | None


class PolicyError(ValueError):
    """A policy definition that cannot be built (names the offending key)."""


def parse_community(text: str | int) -> int:
    """``"64512:100"`` or a well-known name to the 32-bit value (RFC 1997)."""
    if isinstance(text, int):
        return text
    if text.lower() in WELL_KNOWN_COMMUNITIES:
        return WELL_KNOWN_COMMUNITIES[text.lower()]
    hi, _, lo = text.partition(":")
    try:
        a, b = int(hi), int(lo)
    except ValueError:
        raise PolicyError(f"{text!r} is not a community (A:B)") from None
    if not (0 <= a <= 0xFFFF and 0 <= b <= 0xFFFF):
        raise PolicyError(f"{text!r}: community halves are 16-bit")
    return (a << 16) | b


def parse_large_community(text: str | tuple[int, int, int]) -> tuple[int, int, int]:
    """``"64512:1:2"`` to ``(64512, 1, 2)`` (RFC 8092)."""
    if isinstance(text, tuple):
        return text
    parts = text.split(":")
    try:
        vals = tuple(int(p) for p in parts)
    except ValueError:
        raise PolicyError(f"{text!r} is not a large community (A:B:C)") from None
    if len(vals) != 3 or not all(0 <= v <= 0xFFFFFFFF for v in vals):
        raise PolicyError(f"{text!r} is not a large community (A:B:C, 32-bit each)")
    return (vals[0], vals[1], vals[2])


@dataclass(frozen=True, slots=True)
class Verdict:
    """An accepted route: its attributes after ``set`` and the export next-hop directive."""

    attrs: PathAttributes
    next_hop: NextHopDirective = None


@dataclass(frozen=True, slots=True)
class Decision:
    """Why a policy accepted or rejected one route: the deciding rule's index (None: the
    policy's default, or ``local``'s only-ours rule) and a sentence saying so."""

    policy: str
    accepted: bool
    rule: int | None
    why: str

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "accepted": self.accepted,
            "rule": self.rule,
            "why": self.why,
        }


@dataclass(frozen=True, slots=True)
class Match:
    """Conditions of one rule; all given ones must hold, none given matches every route.

    ``prefix`` ``(family, network int, length)`` matches routes inside it whose
    length is within ``ge..le`` (both default to the prefix's own length, and
    ``le`` to the family maximum when only ``ge`` is given).
    """

    prefix: tuple[Family, int, int] | None = None
    ge: int = 0
    le: int = 128
    communities: tuple[int, ...] = ()
    large_communities: tuple[tuple[int, int, int], ...] = ()
    as_path: re.Pattern[str] | None = None
    family: Family | None = None
    neighbor: tuple[int, int, int] | None = None  # (version, network int, length)
    origin: int | None = None

    def matches(
        self, family: Family, key: bytes, attrs: PathAttributes, peer: Address | None
    ) -> bool:
        """True if the route satisfies every condition."""
        if self.family is not None and family is not self.family:
            return False
        if self.prefix is not None and not self._prefix_ok(family, key):
            return False
        if self.communities and not set(self.communities).issubset(attrs.communities):
            return False
        if self.large_communities and not set(self.large_communities).issubset(
            attrs.large_communities
        ):
            return False
        if self.as_path is not None and not self.as_path.search(as_path_str(attrs.as_path)):
            return False
        if self.origin is not None and attrs.origin != self.origin:
            return False
        return self.neighbor is None or _in_network(peer, self.neighbor)

    def _prefix_ok(self, family: Family, key: bytes) -> bool:
        assert self.prefix is not None
        pfam, net, plen = self.prefix
        ln = key[0]
        if family is not pfam or not self.ge <= ln <= self.le:
            return False
        bits = family.max_bits
        addr = int.from_bytes(key[1:], "big") << (bits - 8 * (len(key) - 1))
        return (addr >> (bits - plen)) == (net >> (bits - plen)) if plen else True


def _in_network(peer: Address | None, net: tuple[int, int, int]) -> bool:
    if peer is None or peer.version != net[0]:
        return False
    bits = peer.max_prefixlen
    return (int(peer) >> (bits - net[2])) == (net[1] >> (bits - net[2])) if net[2] else True


@dataclass(frozen=True, slots=True)
class SetActions:
    """What an accepting rule changes (CONFIG.md ``set``)."""

    local_pref: int | None = None
    med: int | None = None
    community_add: tuple[int, ...] = ()
    community_remove: tuple[int, ...] = ()
    large_community_add: tuple[tuple[int, int, int], ...] = ()
    large_community_remove: tuple[tuple[int, int, int], ...] = ()
    as_path_prepend: int = 0
    next_hop: NextHopDirective = None

    def apply(self, attrs: PathAttributes, local_as: int) -> PathAttributes:
        """The attributes with these changes (the same object when nothing changes)."""
        changes: dict[str, Any] = {}
        if self.local_pref is not None:
            changes["local_pref"] = self.local_pref
        if self.med is not None:
            changes["med"] = self.med
        if self.community_add or self.community_remove:
            drop = set(self.community_remove)
            kept = [c for c in attrs.communities if c not in drop]
            kept += [c for c in self.community_add if c not in kept]
            changes["communities"] = tuple(sorted(set(kept)))
        if self.large_community_add or self.large_community_remove:
            ldrop = set(self.large_community_remove)
            lkept = {c for c in attrs.large_communities if c not in ldrop}
            lkept.update(self.large_community_add)
            changes["large_communities"] = tuple(sorted(lkept))
        if isinstance(self.next_hop, IPv4Address | IPv6Address):
            fam = Family.IPV4_UNICAST if self.next_hop.version == 4 else Family.IPV6_UNICAST
            attrs = attrs.with_next_hop(fam, self.next_hop)
        if changes:
            attrs = attrs.replace(**changes)
        if self.as_path_prepend:
            attrs = attrs.prepend_as(local_as, self.as_path_prepend)
        return attrs

    @property
    def empty(self) -> bool:
        return self == _NO_SET


_NO_SET = SetActions()


@dataclass(frozen=True, slots=True)
class Rule:
    """``match`` → ``action`` (accept or reject) with ``set`` applied on accept."""

    match: Match = Match()
    accept: bool = True
    set: SetActions = _NO_SET


@dataclass(frozen=True, slots=True)
class Policy:
    """An ordered list of rules; the first matching rule decides, else ``default_accept``.

    ``only_local`` marks the built-in ``local`` policy: only locally originated
    routes pass.
    """

    name: str
    rules: tuple[Rule, ...] = ()
    default_accept: bool = False
    only_local: bool = False

    @property
    def prefix_dependent(self) -> bool:
        """True if some rule looks at the prefix (verdicts cannot be cached per attributes)."""
        return any(r.match.prefix is not None for r in self.rules)

    def evaluate(
        self,
        family: Family,
        key: bytes,
        attrs: PathAttributes,
        *,
        local: bool = False,
        peer: Address | None = None,
        local_as: int = 0,
    ) -> Verdict | None:
        """The verdict on one route (``None``: rejected)."""
        if self.only_local and not local:
            return None
        for rule in self.rules:
            if rule.match.matches(family, key, attrs, peer):
                if not rule.accept:
                    return None
                return Verdict(rule.set.apply(attrs, local_as), rule.set.next_hop)
        return Verdict(attrs) if self.default_accept else None

    def decide(
        self,
        family: Family,
        key: bytes,
        attrs: PathAttributes,
        *,
        local: bool = False,
        peer: Address | None = None,
    ) -> Decision:
        """Which rule decides one route, for ``podbgp explain`` (``evaluate``'s readable twin,
        held equal to it by tests/property/test_policy_decide.py)."""
        if self.only_local and not local:
            return Decision(self.name, False, None, "only routes originated here pass")
        for i, rule in enumerate(self.rules):
            if rule.match.matches(family, key, attrs, peer):
                action = "accept" if rule.accept else "reject"
                return Decision(self.name, rule.accept, i, f"rule[{i}] matches: {action}")
        action = "accept" if self.default_accept else "reject"
        return Decision(self.name, self.default_accept, None, f"no rule matches: default {action}")

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Policy:
        """Build from plain data shaped like CONFIG.md's ``[[policy]]`` table (tests and
        harnesses; the daemon builds its policies from typed config, ``podbgp.wiring``)."""
        name = str(data.get("name", ""))
        rules = tuple(
            _rule_from_data(r, f"policy {name!r} rule[{i}]")
            for i, r in enumerate(data.get("rule", data.get("rules", ())))
        )
        default = str(data.get("default_action", "reject"))
        return cls(name, rules, default_accept=default == "accept")


def builtin(name: str) -> Policy:
    """The built-in policies ``all``, ``none`` and ``local``."""
    if name == "all":
        return Policy("all", default_accept=True)
    if name == "none":
        return Policy("none")
    if name == "local":
        return Policy("local", default_accept=True, only_local=True)
    raise PolicyError(f"{name!r} is not a built-in policy (all, none, local)")


def _many(value: Any) -> Iterable[Any]:
    if value is None:
        return ()
    if isinstance(value, str | int | tuple) and not (
        isinstance(value, tuple) and value and isinstance(value[0], str | tuple)
    ):
        return (value,)
    return tuple(value)


def prefix_condition(
    net: IPv4Network | IPv6Network, ge: int | None = None, le: int | None = None
) -> tuple[tuple[Family, int, int], int, int]:
    """``Match``'s ``prefix``, ``ge`` and ``le`` for routes inside ``net`` (CONFIG.md
    ``match.prefix``): without ``ge``/``le`` the length must equal ``net``'s; with only
    ``ge`` it runs up to the family maximum; with only ``le`` it starts at ``net``'s length."""
    fam = Family.IPV4_UNICAST if net.version == 4 else Family.IPV6_UNICAST
    lo = net.prefixlen if ge is None else ge
    hi = (net.max_prefixlen if ge is not None else net.prefixlen) if le is None else le
    if not net.prefixlen <= lo <= hi <= net.max_prefixlen:
        raise PolicyError(f"need {net.prefixlen} <= ge <= le <= {net.max_prefixlen}")
    return (fam, int(net.network_address), net.prefixlen), lo, hi


def neighbor_condition(net: IPv4Network | IPv6Network) -> tuple[int, int, int]:
    """``Match.neighbor`` for peers inside ``net``: ``(version, network int, length)``."""
    return (net.version, int(net.network_address), net.prefixlen)


def _prefix_match(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    text = data.get("prefix")
    if text is None:
        return {}
    try:
        net = ip_network(str(text))
    except ValueError as exc:
        raise PolicyError(f"{where}.match.prefix: {exc}") from None
    ge, le = data.get("ge"), data.get("le")
    try:
        prefix, lo, hi = prefix_condition(
            net, None if ge is None else int(ge), None if le is None else int(le)
        )
    except PolicyError as exc:
        raise PolicyError(f"{where}.match: {exc}") from None
    return {"prefix": prefix, "ge": lo, "le": hi}


def _match_from_data(data: Mapping[str, Any], where: str) -> Match:
    kw = _prefix_match(data, where)
    kw["communities"] = tuple(parse_community(c) for c in _many(data.get("community")))
    kw["large_communities"] = tuple(
        parse_large_community(c) for c in _many(data.get("large_community"))
    )
    if data.get("as_path") is not None:
        pat = data["as_path"]
        kw["as_path"] = pat if isinstance(pat, re.Pattern) else re.compile(str(pat))
    if data.get("family") is not None:
        kw["family"] = Family.IPV6_UNICAST if str(data["family"]) == "ipv6" else Family.IPV4_UNICAST
    if data.get("neighbor") is not None:
        kw["neighbor"] = neighbor_condition(ip_network(str(data["neighbor"])))
    if data.get("origin") is not None:
        kw["origin"] = int(Origin[str(data["origin"]).upper()])
    return Match(**kw)


def _set_from_data(data: Mapping[str, Any]) -> SetActions:
    nh = data.get("next_hop")
    if nh is not None and str(nh) not in ("self", "keep"):
        nh = ip_address(str(nh))
    return SetActions(
        local_pref=data.get("local_pref"),
        med=data.get("med"),
        community_add=tuple(parse_community(c) for c in _many(data.get("community_add"))),
        community_remove=tuple(parse_community(c) for c in _many(data.get("community_remove"))),
        large_community_add=tuple(
            parse_large_community(c) for c in _many(data.get("large_community_add"))
        ),
        large_community_remove=tuple(
            parse_large_community(c) for c in _many(data.get("large_community_remove"))
        ),
        as_path_prepend=int(data.get("as_path_prepend", 0)),
        next_hop=str(nh) if isinstance(nh, str) else nh,
    )


def _rule_from_data(data: Mapping[str, Any], where: str) -> Rule:
    action = str(data.get("action", "accept"))
    if action not in ("accept", "reject"):
        raise PolicyError(f"{where}.action: {action!r} is not accept or reject")
    return Rule(
        _match_from_data(data.get("match") or {}, where),
        action == "accept",
        _set_from_data(data.get("set") or {}),
    )
