"""The verdict engine (docs/ARCHITECTURE.md, "Engine"): SQL text in, immutable Verdict out.

    from sandbox_db_proxy.engine import Engine, classify
    Engine("postgres").classify("SELECT 1").allowed
"""

from __future__ import annotations

from .engine import DIALECTS, Engine, EngineStats, classify, default_engine
from .functions import PG_PROC_QUERY, FunctionCatalog, FunctionPolicy
from .verdict import Statement, Verdict

__all__ = ["DIALECTS", "Engine", "EngineStats", "FunctionCatalog", "FunctionPolicy",
           "PG_PROC_QUERY", "Statement", "Verdict", "classify", "default_engine"]
