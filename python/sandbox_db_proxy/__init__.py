"""sandbox-db-proxy: a read-only database proxy for AI agents."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Engine", "Verdict", "__version__", "classify"]


def __getattr__(name: str):
    # Lazy: importing the package (e.g. for the CLI's `version`) must not load pglast/sqlglot
    # or require the native fast path; `from sandbox_db_proxy import classify` loads the engine.
    if name in ("classify", "Engine", "Verdict"):
        from sandbox_db_proxy import engine
        return getattr(engine, name)
    raise AttributeError(f"module 'sandbox_db_proxy' has no attribute {name!r}")
