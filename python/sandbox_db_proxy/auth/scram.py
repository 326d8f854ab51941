"""SCRAM-SHA-256 (RFC 5802 "Salted Challenge Response Authentication Mechanism", RFC 7677
"SCRAM-SHA-256"), both sides, as PostgreSQL uses it (PostgreSQL docs, "SASL Authentication").

- `ScramServer`: the proxy verifying a client (agent) against a stored verifier or a
  plaintext password from the config. Proofs are compared with `hmac.compare_digest`
  (constant time). Unknown users run the same exchange with a mock salt and then fail, so a
  client cannot tell "no such user" from "wrong password" (PostgreSQL does the same).
- `ScramClient`: the proxy logging in to the backend; the server's signature is checked, so
  a fake server cannot complete the login without knowing the password.

Channel binding (`-PLUS`) is not offered: GS2 header `n,,` or `y,,` only (RFC 5802 section 6).
Passwords are normalised with SASLprep (RFC 4013) when that succeeds and used as raw bytes
otherwise, exactly like PostgreSQL's `pg_saslprep` fallback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import stringprep
import unicodedata
from functools import lru_cache

MECHANISM = "SCRAM-SHA-256"
DEFAULT_ITERATIONS = 4096      # PostgreSQL's scram_iterations default
MAX_ITERATIONS = 1_000_000     # refuse a backend asking for absurd work (DoS of the proxy)


class ScramError(Exception):
    """Malformed SCRAM message or failed verification."""


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _unb64(s: str) -> bytes:
    try:
        return base64.b64decode(s.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise ScramError("invalid base64") from exc


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def _h(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def saslprep(password: str) -> bytes:
    """RFC 4013 SASLprep (stringprep profile), falling back to the raw UTF-8 bytes when the
    password contains prohibited characters, as PostgreSQL does (src/common/saslprep.c)."""
    if password.isascii():
        # Printable ASCII maps to itself; control characters are prohibited -> raw fallback
        # gives the same bytes either way.
        return password.encode()
    mapped = "".join(" " if stringprep.in_table_c12(c) else c
                     for c in password if not stringprep.in_table_b1(c))
    norm = unicodedata.normalize("NFKC", mapped)
    if not norm:
        return password.encode()
    prohibited = (stringprep.in_table_c12, stringprep.in_table_c21_c22, stringprep.in_table_c3,
                  stringprep.in_table_c4, stringprep.in_table_c5, stringprep.in_table_c6,
                  stringprep.in_table_c7, stringprep.in_table_c8, stringprep.in_table_c9,
                  stringprep.in_table_a1)
    if any(f(c) for c in norm for f in prohibited):
        return password.encode()
    # Bidi rule (RFC 3454 section 6).
    if any(stringprep.in_table_d1(c) for c in norm):
        if any(stringprep.in_table_d2(c) for c in norm):
            return password.encode()
        if not (stringprep.in_table_d1(norm[0]) and stringprep.in_table_d1(norm[-1])):
            return password.encode()
    return norm.encode()


def salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", saslprep(password), salt, iterations)


@lru_cache(maxsize=256)
def _backend_salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    """`salted_password` for logging in to a backend, cached: a PostgreSQL role's salt and
    iteration count are fixed (pg_authid), so every backend connection of that role would
    run the same PBKDF2 again -- ~1.7 ms of CPU per connection, which an agent fleet that
    connects per query pays thousands of times a second. The proxy holds the plaintext
    password anyway, so the cached key adds nothing an attacker of the process would not
    already have (PgBouncer caches these keys too). Bounded by the number of (password,
    salt) pairs: one per backend role."""
    return salted_password(password, salt, iterations)


class Verifier:
    """What a server stores: salt, iterations, StoredKey, ServerKey (RFC 5802 section 3)."""

    __slots__ = ("salt", "iterations", "stored_key", "server_key")

    def __init__(self, salt: bytes, iterations: int, stored_key: bytes, server_key: bytes):
        self.salt, self.iterations, self.stored_key, self.server_key = salt, iterations, stored_key, server_key

    @classmethod
    def from_password(cls, password: str, salt: bytes | None = None,
                      iterations: int = DEFAULT_ITERATIONS) -> "Verifier":
        salt = salt if salt is not None else secrets.token_bytes(16)
        sp = salted_password(password, salt, iterations)
        client_key = _hmac(sp, b"Client Key")
        return cls(salt, iterations, _h(client_key), _hmac(sp, b"Server Key"))

    @classmethod
    def parse(cls, text: str) -> "Verifier":
        """PostgreSQL's `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>` (RFC 5803 style)."""
        try:
            mech, rest = text.split("$", 1)
            iter_salt, keys = rest.split("$", 1)
            it, salt = iter_salt.split(":", 1)
            stored, server = keys.split(":", 1)
            if mech != MECHANISM:
                raise ValueError(mech)
            v = cls(_unb64(salt), int(it), _unb64(stored), _unb64(server))
        except (ValueError, ScramError) as exc:
            raise ScramError("invalid SCRAM verifier") from exc
        if len(v.stored_key) != 32 or len(v.server_key) != 32 or v.iterations < 1:
            raise ScramError("invalid SCRAM verifier")
        return v

    def to_text(self) -> str:
        return (f"{MECHANISM}${self.iterations}:{_b64(self.salt)}$"
                f"{_b64(self.stored_key)}:{_b64(self.server_key)}")


# A per-process secret: verifiers derived from config passwords are cached under a salt
# nobody else knows (so PBKDF2 runs once per password, not once per connection -- a login
# flood must not burn the proxy's CPU), and mock salts for unknown users are stable per user
# name (PostgreSQL's scram_mock_salt) so probing the same name twice looks the same.
_PROCESS_SECRET = secrets.token_bytes(32)


@lru_cache(maxsize=1024)
def _cached_verifier(password: str) -> Verifier:
    salt = _hmac(_PROCESS_SECRET, b"salt:" + password.encode("utf-8", "surrogatepass"))[:16]
    return Verifier.from_password(password, salt)


def verifier_for_password(password: str) -> Verifier:
    return _cached_verifier(password)


def _attrs(msg: str) -> list[tuple[str, str]]:
    out = []
    for part in msg.split(","):
        if len(part) < 2 or part[1] != "=":
            raise ScramError(f"malformed SCRAM attribute {part[:20]!r}")
        out.append((part[0], part[2:]))
    return out


def _printable_nonce(n: str) -> bool:
    # RFC 5802 section 7: printable ASCII except ','.
    return bool(n) and all(0x21 <= ord(c) <= 0x7E and c != "," for c in n)


class ScramServer:
    """Server side of one exchange. `first(client_first) -> server_first`,
    `final(client_final) -> server_final` (raises ScramError on a wrong proof). `verifier`
    None = unknown user: the exchange runs on a mock verifier and always fails."""

    def __init__(self, verifier: Verifier | None, mock_user: str = ""):
        self.ok_user = verifier is not None
        if verifier is None:
            salt = _hmac(_PROCESS_SECRET, b"mock:" + mock_user.encode("utf-8", "surrogatepass"))[:16]
            verifier = Verifier(salt, DEFAULT_ITERATIONS, secrets.token_bytes(32), secrets.token_bytes(32))
        self.v = verifier
        self.client_first_bare = ""
        self.server_first = ""
        self.nonce = ""
        self.gs2_header = ""

    def first(self, client_first: str) -> str:
        # gs2-header: cbind-flag "," [authzid] ","  (RFC 5802 section 7)
        if client_first.startswith(("n,", "y,")):
            flag_end = 1
        elif client_first.startswith("p="):
            raise ScramError("channel binding was not offered by this server")
        else:
            raise ScramError("malformed GS2 header")
        comma = client_first.find(",", flag_end + 1)
        if comma < 0:
            raise ScramError("malformed GS2 header")
        authzid = client_first[flag_end + 1:comma]
        if authzid:
            raise ScramError("authorization identities are not supported")
        self.gs2_header = client_first[:comma + 1]
        bare = client_first[comma + 1:]
        attrs = _attrs(bare)
        if len(attrs) < 2 or attrs[0][0] != "n" or attrs[1][0] != "r":
            raise ScramError("client-first-message must start with n= and r=")
        if attrs[0][1].startswith("m") or any(k == "m" for k, _ in attrs):
            raise ScramError("mandatory SCRAM extensions are not supported")
        cnonce = attrs[1][1]
        if not _printable_nonce(cnonce):
            raise ScramError("invalid client nonce")
        self.client_first_bare = bare
        self.nonce = cnonce + _b64(secrets.token_bytes(18))
        self.server_first = f"r={self.nonce},s={_b64(self.v.salt)},i={self.v.iterations}"
        return self.server_first

    def final(self, client_final: str) -> str:
        attrs = _attrs(client_final)
        if len(attrs) < 3 or attrs[0][0] != "c" or attrs[1][0] != "r" or attrs[-1][0] != "p":
            raise ScramError("malformed client-final-message")
        if _unb64(attrs[0][1]) != self.gs2_header.encode():
            raise ScramError("channel binding data does not match")
        if not hmac.compare_digest(attrs[1][1].encode(), self.nonce.encode()):
            raise ScramError("nonce mismatch")
        proof = _unb64(attrs[-1][1])
        if len(proof) != 32:
            raise ScramError("invalid proof length")
        without_proof = client_final[:client_final.rfind(",p=")]
        auth_message = f"{self.client_first_bare},{self.server_first},{without_proof}".encode()
        client_signature = _hmac(self.v.stored_key, auth_message)
        client_key = _xor(proof, client_signature)
        good = hmac.compare_digest(_h(client_key), self.v.stored_key)
        if not (good and self.ok_user):
            raise ScramError("password authentication failed")
        return "v=" + _b64(_hmac(self.v.server_key, auth_message))


class ScramClient:
    """Client side (proxy -> backend). `first() -> client_first`, `final(server_first) ->
    client_final`, `verify(server_final)` raises unless the server proved it knows the
    verifier."""

    def __init__(self, password: str):
        self.password = password
        self.cnonce = _b64(secrets.token_bytes(18))
        self.gs2_header = "n,,"
        # PostgreSQL ignores the SCRAM user name (it uses the startup packet's); libpq sends "".
        self.client_first_bare = f"n=,r={self.cnonce}"
        self.auth_message = b""
        self.salted = b""

    def first(self) -> str:
        return self.gs2_header + self.client_first_bare

    def final(self, server_first: str) -> str:
        attrs = dict(_attrs(server_first))
        nonce, salt_b64, it = attrs.get("r"), attrs.get("s"), attrs.get("i")
        if nonce is None or salt_b64 is None or it is None or "m" in attrs:
            raise ScramError("malformed server-first-message")
        if not nonce.startswith(self.cnonce) or len(nonce) <= len(self.cnonce) or not _printable_nonce(nonce):
            raise ScramError("server nonce does not extend the client nonce")
        if not it.isdigit() or not 1 <= int(it) <= MAX_ITERATIONS:
            raise ScramError("invalid iteration count")
        self.salted = _backend_salted_password(self.password, _unb64(salt_b64), int(it))
        without_proof = f"c={_b64(self.gs2_header.encode())},r={nonce}"
        self.auth_message = f"{self.client_first_bare},{server_first},{without_proof}".encode()
        client_key = _hmac(self.salted, b"Client Key")
        proof = _xor(client_key, _hmac(_h(client_key), self.auth_message))
        return f"{without_proof},p={_b64(proof)}"

    def verify(self, server_final: str) -> None:
        attrs = dict(_attrs(server_final))
        if "e" in attrs:
            raise ScramError(f"server reported SCRAM error {attrs['e']!r}")
        sig = _unb64(attrs.get("v", ""))
        expected = _hmac(_hmac(self.salted, b"Server Key"), self.auth_message)
        if not hmac.compare_digest(sig, expected):
            raise ScramError("server signature mismatch: the backend did not prove it knows the password")
