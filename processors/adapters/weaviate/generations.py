"""Generations of the memory collection behind one alias. Adapter (Weaviate I/O), with
the naming rules pure.

Every reader and writer names the alias (``AGENTMEM_WEAVIATE_COLLECTION``, ``Memory``);
the alias points at one generation, a collection named ``Memory_g1``, ``Memory_g2``...
``agentmem rebuild`` fills the next generation from the log and then moves the alias,
which Weaviate does atomically: a request is served by the old generation or by the
new one, never by neither. A collection named like the alias itself (made before
generations existed) keeps being used as it is; rebuilding needs it moved first.
"""

from __future__ import annotations

import logging
import re

import weaviate
from weaviate.exceptions import UnexpectedStatusCodeError

from processors.adapters.weaviate.schema import ensure_collection

__all__ = [
    "ensure_alias",
    "generation_name",
    "generation_number",
    "generations",
    "served_by",
    "switch_alias",
]

log = logging.getLogger(__name__)


def generation_name(alias: str, number: int) -> str:
    """The collection of generation ``number`` of ``alias``. Pure."""
    return f"{alias}_g{number}"


def generation_number(alias: str, collection: str) -> int | None:
    """The generation ``collection`` is of ``alias``, if it is one. Pure."""
    match = re.fullmatch(re.escape(alias) + r"_g([1-9][0-9]{0,8})", collection)
    return int(match.group(1)) if match else None


async def served_by(client: weaviate.WeaviateAsyncClient, alias: str) -> str | None:
    """The collection the alias points at (None: no such alias)."""
    found = await client.alias.get(alias_name=alias)
    return found.collection if found is not None else None


async def ensure_alias(client: weaviate.WeaviateAsyncClient, alias: str) -> str:
    """The collection ``alias`` is served by: the alias' target; else a collection of
    that very name (made before generations); else generation 1, created now with the
    alias pointing at it. Safe when several workers start at once."""
    target = await served_by(client, alias)
    if target is not None:
        return target
    if await client.collections.exists(alias):
        return alias
    first = generation_name(alias, 1)
    await ensure_collection(client, first)
    try:
        await client.alias.create(alias_name=alias, target_collection=first)
        log.info("created alias %s -> %s", alias, first)
    except UnexpectedStatusCodeError:
        target = await served_by(client, alias)  # another process made it first
        if target is None:
            raise
        return target
    return first


async def generations(client: weaviate.WeaviateAsyncClient, alias: str) -> dict[int, str]:
    """Every generation of ``alias`` that exists: number -> collection."""
    names = await client.collections.list_all(simple=True)
    found = {generation_number(alias, name): name for name in names}
    return {n: name for n, name in sorted(found.items(), key=lambda kv: kv[0] or 0) if n}


async def switch_alias(client: weaviate.WeaviateAsyncClient, alias: str, target: str) -> None:
    """Point ``alias`` at ``target``, atomically for readers and writers."""
    if not await client.alias.update(alias_name=alias, new_target_collection=target):
        raise RuntimeError(f"Weaviate did not move alias {alias} to {target}")
    log.warning("alias %s now serves %s", alias, target)
