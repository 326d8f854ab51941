"""sandbox-db-proxy: a read-only database proxy for AI agents."""

from __future__ import annotations

__version__ = "0.1.0"
