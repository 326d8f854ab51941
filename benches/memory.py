"""Resident memory of the proxy with many idle client connections (issue 6): open N logged-in
client connections (each with its backend connection) through the proxy, wait until they are
idle, and divide the proxy's RSS growth by N."""

from __future__ import annotations

import asyncio
import resource
import time

import asyncpg


async def _open_many(host: str, port: int, user: str, password: str, database: str, n: int,
                     batch: int = 50) -> list:
    conns = []
    for i in range(0, n, batch):
        conns += await asyncio.gather(*[
            asyncpg.connect(host=host, port=port, user=user, password=password, database=database,
                            ssl=False, statement_cache_size=0)
            for _ in range(min(batch, n - i))])
    return conns


def idle_connections_rss(peer, user: str, password: str, database: str, n: int = 1000) -> dict:
    """Returns RSS before/after and bytes per idle connection, for the peer's process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    before = peer.rss_bytes()

    async def main() -> dict:
        conns = await _open_many(peer.host, peer.port, user, password, database, n)
        try:
            # every connection has done one round trip; now let them sit idle
            await asyncio.gather(*[c.fetchval("SELECT 1") for c in conns])
            time.sleep(1.0)
            after = peer.rss_bytes()
        finally:
            await asyncio.gather(*[c.close() for c in conns], return_exceptions=True)
        return {"connections": n, "rss_before_bytes": before, "rss_after_bytes": after,
                "bytes_per_connection": (after - before) / n}

    return asyncio.run(main())
