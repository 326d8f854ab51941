"""Agent sessions (issue 5): per-agent short-lived credentials with their own limits.

- `store.py`: the embedded SQLite store (`sessions.store`); verifiers only, never passwords.
- `manager.py`: `SessionManager` -- create/list/get/revoke, TTL, idle timeout, caps, the
  expiry loop, the login provider the relays see through `ProxyApp.lookup_login`.
- `api.py`: the control API routes on the admin listener (`/api/sessions`, `/openapi.json`).
"""

from sandbox_db_proxy.sessions.manager import SessionError, SessionManager
from sandbox_db_proxy.sessions.store import SessionRecord, SessionStore

__all__ = ["SessionError", "SessionManager", "SessionRecord", "SessionStore"]
