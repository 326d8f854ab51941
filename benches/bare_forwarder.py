"""The floor for a Python proxy: a bare uvloop TCP forwarder that parses nothing (issue 6:
"a bare uvloop forwarder costs 22-30 us of CPU per query here").

    .venv/bin/python benches/bare_forwarder.py LISTEN_PORT TARGET_HOST TARGET_PORT

Same I/O shape as the relays (asyncio Protocols, one `transport.write` per received chunk,
TCP_NODELAY, pause/resume on the write buffer's high-water mark), nothing else. Its CPU time
per query, next to sandbox-db-proxy's, shows how much of the proxy's cost is the event loop
and the kernel's socket work, which no amount of Python tuning removes.
"""

from __future__ import annotations

import asyncio
import socket
import sys


class _Side(asyncio.Protocol):
    def __init__(self):
        self.transport = None
        self.peer: "_Side | None" = None
        self.early: list[bytes] = []

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        p = self.peer
        if p is None or p.transport is None:
            self.early.append(data)
        else:
            p.transport.write(data)

    def connection_lost(self, exc):
        p = self.peer
        if p is not None and p.transport is not None:
            p.transport.close()

    def pause_writing(self):
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self):
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class _Client(_Side):
    def __init__(self, host: str, port: int):
        super().__init__()
        self.host, self.port = host, port

    def connection_made(self, transport):
        super().connection_made(transport)
        transport.pause_reading()
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self):
        loop = asyncio.get_running_loop()
        try:
            _, backend = await loop.create_connection(_Side, self.host, self.port)
        except OSError:
            self.transport.close()
            return
        backend.peer, self.peer = self, backend
        for chunk in backend.early:        # the server spoke first (MySQL greeting)
            self.transport.write(chunk)
        for chunk in self.early:           # the client spoke first (PostgreSQL startup)
            backend.transport.write(chunk)
        backend.early.clear()
        self.early.clear()
        self.transport.resume_reading()


async def main(listen_port: int, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(host, port), "127.0.0.1", listen_port,
                                      reuse_address=True, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    import uvloop
    uvloop.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
