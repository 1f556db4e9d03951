"""Where an enrichment answer lives in ``llm_cache``: under its events partition and
its tenant. Pure.

An answer is cached under the scope of the memory it is about, so that

- a tenant's answers are never served to another tenant (whether a text was enriched
  before is nobody else's business),
- an erase of a memory or a tenant forgets the tenant's answers with one prefix, and
- a worker forgets a partition's answers with one prefix when it stops owning the
  partition (whoever owns it next may erase there).
"""

from __future__ import annotations

__all__ = ["SEPARATOR", "cache_scope", "partition_prefix"]

# A byte no partition number has and no tenant name has either (tenant names are
# checked by processors.core.validation).
SEPARATOR = "\x1f"


def partition_prefix(partition: int) -> str:
    """The prefix of every answer cached for memories of events partition ``partition``."""
    return f"{partition}{SEPARATOR}"


def cache_scope(partition: int, tenant: str) -> str:
    """The prefix of every answer cached for ``tenant``'s memories (in ``partition``,
    the one partition a tenant's events go to)."""
    return f"{partition_prefix(partition)}{tenant}{SEPARATOR}"
