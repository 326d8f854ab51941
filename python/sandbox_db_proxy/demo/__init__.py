"""The self-contained demo (`sandbox-db-proxy demo`, `serve --test-mode`): sample schema
(`schema.py`) and the guide's "Security Verification" checks (`checks.py`)."""
