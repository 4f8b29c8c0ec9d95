"""Per-host policies: one default and overrides by host name."""

from __future__ import annotations

from collections.abc import Mapping

from .._policy import Policy, PolicyLike, as_policy
from ._alabel import a_label

__all__ = ["HostPolicies", "HostPolicyLike", "as_host_policies"]


class HostPolicies:
    """A default policy plus overrides for exact host names and ``*.domain`` patterns.

    ``*.corp.example`` matches any name below ``corp.example`` at any depth, but not
    ``corp.example`` itself. An exact name wins over a pattern; among patterns the
    longest (most specific) wins. Names are compared as urllib3 connects to them: IDNA
    A-labels, case-folded, without a trailing dot; so ``bücher.example`` and
    ``xn--bcher-kva.example`` are the same override. A pattern that cannot be encoded
    is a ``ValueError`` here, not a rule that silently never matches::

        HostPolicies("soft-fail", {"*.corp.example": "must-staple"})
    """

    def __init__(
        self, default: PolicyLike = "soft-fail", overrides: Mapping[str, PolicyLike] | None = None
    ) -> None:
        self.default = as_policy(default)
        self._exact: dict[str, Policy] = {}
        self._suffixes: list[tuple[str, Policy]] = []
        for pattern, policy in (overrides or {}).items():
            name = _normalize_pattern(pattern)
            if name.startswith("*."):
                if len(name) < 3 or "*" in name[2:]:
                    raise ValueError(f"bad host pattern {pattern!r}")
                self._suffixes.append((name[1:], as_policy(policy)))
            elif "*" in name or not name:
                raise ValueError(f"bad host pattern {pattern!r}: use a name or '*.domain'")
            else:
                self._exact[name] = as_policy(policy)
        self._suffixes.sort(key=lambda item: len(item[0]), reverse=True)

    def policy_for(self, host: str | None) -> Policy:
        """The policy for connections to ``host`` (the default when ``host`` is None).

        ``ValueError`` for a non-ASCII ``host`` that cannot be IDNA-encoded.
        """
        if not host:
            return self.default
        name = a_label(host)
        exact = self._exact.get(name)
        if exact is not None:
            return exact
        for suffix, policy in self._suffixes:
            if name.endswith(suffix):
                return policy
        return self.default

    @property
    def any_requests_staple(self) -> bool:
        """Whether any host gets a policy that asks for staples."""
        policies = [self.default, *self._exact.values(), *(p for _, p in self._suffixes)]
        return any(p.requests_staple for p in policies)

    def __repr__(self) -> str:
        overrides = {**self._exact, **{"*" + s: p for s, p in self._suffixes}}
        shown = {k: v.mode.value for k, v in overrides.items()}
        return f"HostPolicies({self.default.mode.value!r}, {shown!r})"


HostPolicyLike = HostPolicies | PolicyLike


def as_host_policies(policy: HostPolicyLike) -> HostPolicies:
    """``HostPolicies`` for a host-policy table, a :class:`Policy` or a mode string."""
    if isinstance(policy, HostPolicies):
        return policy
    return HostPolicies(policy)


def _normalize_pattern(pattern: str) -> str:
    # The wildcard label is not IDNA: encode only the domain behind it.
    wildcard = pattern.startswith("*.")
    try:
        name = a_label(pattern[2:] if wildcard else pattern)
    except ValueError as error:
        raise ValueError(f"bad host pattern {pattern!r}: {error}") from None
    return "*." + name if wildcard else name
