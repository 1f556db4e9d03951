"""API keys: ``AGENTMEM_API_KEYS="key1=tenant-a,tenant-b;key2=*"``. Pure."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

ALL_TENANTS = "*"


@dataclass(frozen=True)
class KeyRing:
    grants: dict[str, frozenset[str]]

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        grants: dict[str, frozenset[str]] = {}
        entries = filter(None, (part.strip() for part in spec.split(";")))
        for number, entry in enumerate(entries, start=1):
            key, sep, tenants = entry.partition("=")
            names = frozenset(t.strip() for t in tenants.split(",") if t.strip())
            if not sep or not key.strip() or not names:
                # by position only: not one character of a key goes to a log
                raise ValueError(f"API key entry {number} needs key=tenant,... (or key=*)")
            grants[key.strip()] = names
        return cls(grants)

    def tenants_for(self, presented: str) -> frozenset[str] | None:
        """The tenants a key may touch, or None for an unknown key (constant-time compare)."""
        found = None
        for key, tenants in self.grants.items():
            if hmac.compare_digest(key.encode(), presented.encode()):
                found = tenants
        return found

    @staticmethod
    def allows(tenants: frozenset[str], tenant: str) -> bool:
        return ALL_TENANTS in tenants or tenant in tenants
