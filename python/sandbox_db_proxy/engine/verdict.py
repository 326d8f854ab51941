"""The immutable result of classifying SQL text (contract: docs/ARCHITECTURE.md, "Engine").

Verdicts are shared between callers (the caches hand out the same object many times), so
they must be immutable: a frozen dataclass with slots, and tuples instead of lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

ALLOW = "allow"
BLOCK = "block"

# Statement classes (docs/ARCHITECTURE.md): what kind of thing a statement does.
READ = "read"
WRITE = "write"
DDL = "ddl"
DCL = "dcl"
TRANSACTION = "transaction"
SESSION = "session"
FUNCTION = "function"
ADMIN = "admin"
UNKNOWN = "unknown"
CLASSES = (READ, WRITE, DDL, DCL, TRANSACTION, SESSION, FUNCTION, ADMIN, UNKNOWN)


class Statement(NamedTuple):
    """One statement of the text: its verbs (upper-case keywords such as ("SELECT",) or
    ("WITH", "DELETE")) and its class."""

    verbs: tuple[str, ...]
    klass: str

    def to_dict(self) -> dict:
        return {"verbs": list(self.verbs), "class": self.klass}


@dataclass(frozen=True, slots=True)
class Verdict:
    verdict: str                      # "allow" | "block"
    rule: str                         # short snake_case id of the deciding rule
    reason: str                       # for the agent: what was blocked, why, what to send instead
    klass: str                        # one of CLASSES ("class" in JSON)
    statements: tuple[Statement, ...] = ()
    path: str = "deep"                # "cache" | "fast" | "deep"

    @property
    def allowed(self) -> bool:
        return self.verdict == ALLOW

    def to_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "rule": self.rule,
            "reason": self.reason,
            "class": self.klass,
            "statements": [s.to_dict() for s in self.statements],
            "path": self.path,
        }

    def with_path(self, path: str) -> "Verdict":
        # direct construction: dataclasses.replace() introspects fields and costs ~3 µs
        if self.path == path:
            return self
        return Verdict(self.verdict, self.rule, self.reason, self.klass, self.statements, path)


def allow(klass: str, statements: tuple[Statement, ...], path: str, rule: str = "read_only",
          reason: str = "") -> Verdict:
    return Verdict(ALLOW, rule, reason or "read-only statement", klass, statements, path)


def block(rule: str, klass: str, reason: str, statements: tuple[Statement, ...] = (),
          path: str = "deep") -> Verdict:
    return Verdict(BLOCK, rule, reason, klass, statements, path)
