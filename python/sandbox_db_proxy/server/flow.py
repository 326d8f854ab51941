"""Flow control shared by the relays' asyncio Protocols: when one side's write buffer is full
(`pause_writing`), stop reading the other side until it drains (`resume_writing`), so a slow
reader bounds the proxy's memory (asyncio docs, "Flow Control Callbacks")."""

from __future__ import annotations


def set_reading(transport, reading: bool) -> None:
    """Pause or resume reading on the peer's transport, if it is still open."""
    if transport is not None and not transport.is_closing():
        if reading:
            transport.resume_reading()
        else:
            transport.pause_reading()
