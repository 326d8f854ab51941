"""Result types shared by the deep checks (deep_postgres, deep_sqlglot): per statement, per
text, and the exception a tree walk raises at the first construct that blocks."""

from __future__ import annotations

from typing import NamedTuple

from .verdict import Statement


class StmtResult(NamedTuple):
    verbs: tuple[str, ...]
    klass: str
    rule: str | None        # None: allowed
    reason: str
    literal_free: bool      # the decision did not look at any literal value


class DeepResult(NamedTuple):
    statements: tuple[Statement, ...]
    block: StmtResult | None          # first blocking statement, None when all are allowed
    klass: str                        # class of the text (first blocking, else first statement)
    fingerprint_ok: bool              # the verdict provably does not depend on literal values


class _Block(Exception):
    """Raised inside the walk at the first construct that blocks."""

    def __init__(self, rule: str, klass: str, reason: str, verb: str | None = None):
        super().__init__(reason)
        self.rule, self.klass, self.reason, self.verb = rule, klass, reason, verb
