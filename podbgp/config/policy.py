"""Reading `[[policy]]`: ordered rules of match, action and set."""

from __future__ import annotations

from podbgp.config.reader import (
    _REQUIRED,
    AS_MAX,
    AS_PATH_PREPEND_MAX,
    _community,
    _done,
    _enum,
    _int_range,
    _Invalid,
    _large_community,
    _named,
    _next_hop,
    _prefix,
    _regex,
    _Table,
    default_of,
    show,
)
from podbgp.config.schema import (
    FAMILY_NAMES,
    ORIGIN_NAMES,
    IPNetwork,
    Match,
    Policy,
    PolicyAction,
    Rule,
    SetActions,
)

RESERVED_POLICY_NAMES = frozenset({"all", "none", "local"})


def _read_policies(tables: list[_Table]) -> list[Policy | None]:
    out: list[Policy | None] = []
    seen: dict[str, int] = {}
    for i, t in enumerate(tables):
        p = _read_policy(t)
        name = t.data.get("name")
        if isinstance(name, str) and name in seen:
            t.error("name", f"{show(name)} is already policy[{seen[name]}]")
            p = None
        if isinstance(name, str):
            seen.setdefault(name, i)
        out.append(p)
    return out


def _policy_name(v: str) -> str:
    if not v:
        raise _Invalid("must not be empty")
    if v in RESERVED_POLICY_NAMES:
        raise _Invalid(
            f"{show(v)} is reserved (all | none | local mean themselves in import/export)"
        )
    return v


def _read_policy(t: _Table) -> Policy | None:
    name = t.get("name", str, _REQUIRED, _policy_name)
    default = t.get(
        "default_action", str, default_of(Policy, "default_action"), _enum(PolicyAction)
    )
    rules = [_read_rule(r) for r in t.subs("rule")]
    if any(r is None for r in rules):
        t.failed = True
    return _done(t, lambda: Policy(name, tuple(r for r in rules if r), default))


def _read_rule(t: _Table) -> Rule | None:
    match = _read_match(t.sub("match"))
    action = t.get("action", str, Rule().action, _enum(PolicyAction))
    set_table = t.sub("set")
    actions = _read_set(set_table)
    if action == PolicyAction.REJECT and set_table.data:
        t.error("set", "has no effect on a rejected route")
    if match is None or actions is None:
        t.failed = True
        t.finish()
        return None
    return _done(t, lambda: Rule(match, action, actions))


def _read_match(t: _Table) -> Match | None:
    d = Match()
    prefix = t.get("prefix", str, d.prefix, _prefix)
    ge = t.get("ge", int, d.ge, _int_range(0, 128))
    le = t.get("le", int, d.le, _int_range(0, 128))
    values = {
        "community": t.get("community", str, d.community, _community),
        "large_community": t.get("large_community", str, d.large_community, _large_community),
        "as_path": t.get("as_path", str, d.as_path, _regex),
        "family": t.get("family", str, d.family, _named(FAMILY_NAMES)),
        "neighbor": t.get("neighbor", str, d.neighbor, _neighbor),
        "origin": t.get("origin", str, d.origin, _named(ORIGIN_NAMES)),
    }
    _check_prefix_lengths(t, prefix, ge, le)
    return _done(t, lambda: Match(prefix, ge, le, **values))


def _neighbor(v: str) -> IPNetwork:
    """A peer address or a prefix of peer addresses."""
    return _prefix(v)


def _check_prefix_lengths(
    t: _Table, prefix: IPNetwork | None, ge: int | None, le: int | None
) -> None:
    """prefix length ≤ ge ≤ le ≤ the family's maximum."""
    for key, value in (("ge", ge), ("le", le)):
        if value is not None and not t.has("prefix"):
            t.error(key, f"{value} needs match.prefix")
    if prefix is None:
        return
    top = prefix.max_prefixlen
    for key, value in (("ge", ge), ("le", le)):
        if value is not None and not prefix.prefixlen <= value <= top:
            t.error(
                key,
                f"{value} is not within {prefix.prefixlen}..{top} (the length of {prefix} up to /{top})",
            )
    if ge is not None and le is not None and ge > le:
        t.error("le", f"{le} is below ge {ge}")


def _read_set(t: _Table) -> SetActions | None:
    d = SetActions()
    values = {
        "local_pref": t.get("local_pref", int, d.local_pref, _int_range(0, AS_MAX)),
        "med": t.get("med", int, d.med, _int_range(0, AS_MAX)),
        "community_add": t.get_list("community_add", d.community_add, _community),
        "community_remove": t.get_list("community_remove", d.community_remove, _community),
        "large_community_add": t.get_list(
            "large_community_add", d.large_community_add, _large_community
        ),
        "large_community_remove": t.get_list(
            "large_community_remove", d.large_community_remove, _large_community
        ),
        "as_path_prepend": t.get(
            "as_path_prepend", int, d.as_path_prepend, _int_range(0, AS_PATH_PREPEND_MAX)
        ),
        "next_hop": t.get("next_hop", str, d.next_hop, _next_hop(("self", "keep"))),
    }
    return _done(t, lambda: SetActions(**values))
