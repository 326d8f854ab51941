"""MySQL / MariaDB authentication, both sides of the proxy (sans-I/O: payloads in, payloads out).

The proxy brokers logins (issue 4): it authenticates the agent itself as a *server*
(`ServerAuth`) against `app.lookup_login()`, then logs in to the database as a *client*
(`BackendAuth`) with the backend's own credentials. Agents never learn the database password.

Plugins (MySQL reference manual, "Pluggable Authentication"; MariaDB KB "Authentication
Plugins"):
- `mysql_native_password`: response = SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw))). The
  server can verify it knowing only SHA1(SHA1(pw)) ("Native Authentication").
- `caching_sha2_password` (MySQL 8 default): fast auth = SHA256(pw) XOR SHA256(SHA256(SHA256(pw))
  + scramble), verifiable from SHA256(SHA256(pw)) (session logins store only that); AuthMoreData 0x03 = fast auth succeeded, 0x04 = perform full authentication,
  which sends the cleartext password over TLS, or without TLS encrypts (pw + NUL) XOR scramble
  with the server's RSA public key (RSA-OAEP with SHA-1, as libmysqlclient does); the client
  asks for the key with 0x02 ("Caching SHA-2 Pluggable Authentication").
- `sha256_password`: same full-auth exchange; the key is requested with 0x01.
- MariaDB `client_ed25519`: an Ed25519 signature of the scramble whose secret "seed" is the
  password itself (SHA-512 of the password of any length; MariaDB KB "Authentication Plugin -
  ed25519").
- `mysql_clear_password`: only ever sent over TLS.

Scrambles and secrets are compared in constant time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from dataclasses import dataclass, field

NATIVE = "mysql_native_password"
SHA2 = "caching_sha2_password"
SHA256 = "sha256_password"
ED25519 = "client_ed25519"
CLEAR = "mysql_clear_password"

SCRAMBLE_LENGTH = 20

# AuthMoreData second bytes of caching_sha2_password ("Caching SHA-2 Pluggable Authentication").
SHA2_REQUEST_PUBLIC_KEY = 0x02
SHA2_FAST_AUTH_OK = 0x03
SHA2_PERFORM_FULL_AUTH = 0x04


# --------------------------------------------------------------------------- primitives

def new_scramble() -> bytes:
    """20 random bytes in 1..127, never NUL or '$' (what mysqld's generate_user_salt produces,
    so clients that NUL-terminate or parse the scramble never trip over it)."""
    out = bytearray(os.urandom(SCRAMBLE_LENGTH))
    for i, b in enumerate(out):
        b &= 0x7F
        if b in (0, ord("$")):
            b += 1
        out[i] = b
    return bytes(out)


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


def native_hash(password: bytes) -> bytes:
    """SHA1(SHA1(password)): what mysql.user stores for mysql_native_password."""
    return hashlib.sha1(hashlib.sha1(password).digest()).digest()


def native_scramble(password: bytes, scramble: bytes) -> bytes:
    if not password:
        return b""
    stage1 = hashlib.sha1(password).digest()
    stage2 = hashlib.sha1(stage1).digest()
    return _xor(stage1, hashlib.sha1(scramble[:SCRAMBLE_LENGTH] + stage2).digest())


def native_verify(response: bytes, scramble: bytes, *, password: bytes | None = None,
                  stored_hash: bytes | None = None) -> bool:
    """Verify a mysql_native_password response from the plaintext or SHA1(SHA1(pw))."""
    if password is not None:
        if not password:
            return response == b""
        return hmac.compare_digest(response, native_scramble(password, scramble))
    if stored_hash is None or len(response) != 20:
        return False
    # response = SHA1(pw) XOR SHA1(scramble + stored) -> recover SHA1(pw), hash it again.
    stage1 = _xor(response, hashlib.sha1(scramble[:SCRAMBLE_LENGTH] + stored_hash).digest())
    return hmac.compare_digest(hashlib.sha1(stage1).digest(), stored_hash)


def sha2_scramble(password: bytes, scramble: bytes) -> bytes:
    if not password:
        return b""
    p1 = hashlib.sha256(password).digest()
    p2 = hashlib.sha256(p1).digest()
    p3 = hashlib.sha256(p2 + scramble[:SCRAMBLE_LENGTH]).digest()
    return _xor(p1, p3)


def sha2_hash(password: bytes) -> bytes:
    """SHA256(SHA256(password)): the "hash entry" caching_sha2_password fast authentication
    checks against (MySQL source docs, "Caching_sha2_password information")."""
    return hashlib.sha256(hashlib.sha256(password).digest()).digest()


def sha2_verify(response: bytes, scramble: bytes, *, password: bytes | None = None,
                stored_hash: bytes | None = None) -> bool:
    """Verify a caching_sha2_password fast-auth response from the plaintext or from the stored
    SHA256(SHA256(pw)). The client sends XOR(SHA256(pw), SHA256(SHA256(SHA256(pw)), nonce))
    (MySQL source docs, "Caching_sha2_password information"; the server side is
    sha2_password_common.cc Validate_scramble): XOR with SHA256(stored + nonce) gives back
    SHA256(pw), whose SHA256 must be the stored hash. The stored hash alone cannot produce a
    response (that needs SHA256(pw))."""
    if password is not None:
        return bool(password) and _eq(response, sha2_scramble(password, scramble))
    if stored_hash is None or len(stored_hash) != 32 or len(response) != 32:
        return False
    stage1 = _xor(response, hashlib.sha256(stored_hash + scramble[:SCRAMBLE_LENGTH]).digest())
    return _eq(hashlib.sha256(stage1).digest(), stored_hash)


def xor_password(password: bytes, scramble: bytes) -> bytes:
    """(password + NUL) XOR the scramble repeated (sha2_password.cc, xor_string)."""
    s = scramble[:SCRAMBLE_LENGTH]
    msg = password + b"\0"
    return bytes(b ^ s[i % len(s)] for i, b in enumerate(msg))


def rsa_encrypt_password(password: bytes, scramble: bytes, public_key_pem: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    key = serialization.load_pem_public_key(public_key_pem)
    return key.encrypt(xor_password(password, scramble),
                       padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))


class RsaKeyPair:
    """The proxy's RSA key for caching_sha2_password full authentication without TLS.
    Generated once per process on first use (2048 bits, ~0.1 s), never written to disk."""

    _lock = threading.Lock()
    _instance: "RsaKeyPair | None" = None

    def __init__(self):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    @classmethod
    def get(cls) -> "RsaKeyPair":
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def decrypt_password(self, data: bytes, scramble: bytes) -> bytes | None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            plain = self._key.decrypt(data, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()),
                                                        algorithm=hashes.SHA1(), label=None))
        except Exception:  # noqa: BLE001 -- any decryption failure is a failed login
            return None
        s = scramble[:SCRAMBLE_LENGTH]
        clear = bytes(b ^ s[i % len(s)] for i, b in enumerate(plain))
        return clear[:-1] if clear.endswith(b"\0") else clear


def ed25519_sign(password: bytes, scramble: bytes) -> bytes:
    """MariaDB client_ed25519: Ed25519 (RFC 8032 section 5.1.6) with h = SHA-512(password)."""
    from nacl import bindings as nb  # PyNaCl (libsodium); optional, only for ed25519 backends

    h = hashlib.sha512(password).digest()
    s = bytearray(h[:32])
    s[0] &= 248
    s[31] &= 127
    s[31] |= 64
    s = bytes(s)
    r = nb.crypto_core_ed25519_scalar_reduce(hashlib.sha512(h[32:] + scramble).digest())
    big_r = nb.crypto_scalarmult_ed25519_base_noclamp(r)
    big_a = nb.crypto_scalarmult_ed25519_base_noclamp(s)
    k = nb.crypto_core_ed25519_scalar_reduce(hashlib.sha512(big_r + big_a + scramble).digest())
    big_s = nb.crypto_core_ed25519_scalar_add(nb.crypto_core_ed25519_scalar_mul(k, s), r)
    return big_r + big_s


def _eq(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


# --------------------------------------------------------------------------- server side

@dataclass
class Step:
    """One auth step: payloads to send to the peer (in order, the caller frames them with
    consecutive sequence ids), then `done`: None = wait for the peer's next packet,
    True = authenticated (caller sends OK), False = refused (`reason` says why)."""
    send: list[bytes] = field(default_factory=list)
    done: bool | None = None
    reason: str = ""
    plugin: str = ""


def auth_switch_payload(plugin: str, data: bytes) -> bytes:
    return b"\xfe" + plugin.encode() + b"\0" + data + b"\0"


def more_data_payload(data: bytes) -> bytes:
    return b"\x01" + data


class ServerAuth:
    """Verify a client as the server side. `login` is from `app.lookup_login()` (None: unknown
    user -- refused the same way as a wrong password). Accepts whichever of
    mysql_native_password / caching_sha2_password the client answered with; any other plugin
    is switched to `preferred`.

    `fast_cache`: set shared per backend listener of (user, password digest) that completed a
    caching_sha2 full authentication, as mysqld's cache: only those may use fast auth; a first
    login always performs full authentication (TLS cleartext or RSA)."""

    def __init__(self, login, scramble: bytes, *, tls: bool, preferred: str = NATIVE,
                 fast_cache: set | None = None, rsa: "RsaKeyPair | None" = None):
        self.login = login
        self.scramble = scramble
        self.tls = tls
        self.preferred = preferred if preferred in (NATIVE, SHA2) else NATIVE
        self.fast_cache = fast_cache if fast_cache is not None else set()
        self._rsa = rsa
        self.stage = "start"
        self.plugin = ""
        self.path = ""   # how the login was verified: native | sha2-fast | sha2-full-tls | sha2-full-rsa
        pw = getattr(login, "password", None) if login is not None else None
        self._password: bytes | None = pw.encode() if isinstance(pw, str) else pw
        self._native_hash: bytes | None = getattr(login, "mysql_native_hash", None) if login is not None else None
        # session logins carry SHA256(SHA256(pw)) instead of the password (server/app.py Login)
        self._sha2_hash: bytes | None = getattr(login, "mysql_sha2_hash", None) if login is not None else None

    # -- helpers ------------------------------------------------------------------------
    def _fail(self, why: str) -> Step:
        self.stage = "done"
        return Step(done=False, reason=why, plugin=self.plugin)

    def _ok(self, send: list[bytes] | None = None) -> Step:
        self.stage = "done"
        return Step(send=send or [], done=True, plugin=self.plugin)

    def _cache_key(self) -> tuple:
        user = getattr(self.login, "username", "")
        secret = self._password if self._password is not None else (
            self._native_hash or self._sha2_hash or b"")
        return (user, hashlib.sha256(secret).digest())

    def _check_cleartext(self, clear: bytes) -> bool:
        if self._password is not None:
            return _eq(clear, self._password)
        if self._native_hash is not None:
            return _eq(native_hash(clear), self._native_hash)
        if self._sha2_hash is not None:
            return _eq(sha2_hash(clear), self._sha2_hash)
        return False

    # -- steps --------------------------------------------------------------------------
    def begin(self, client_plugin: str | None, response: bytes) -> Step:
        if self.login is None:
            self.plugin = client_plugin or NATIVE
            return self._fail("unknown user")
        plugin = client_plugin or NATIVE
        if plugin in (NATIVE, SHA2):
            return self._answer(plugin, response)
        # Anything else (ed25519, sha256_password, clear text, dialog, ...): ask for ours.
        self.plugin = self.preferred
        self.stage = "switched"
        return Step(send=[auth_switch_payload(self.preferred, self.scramble)], plugin=self.plugin)

    def next(self, payload: bytes) -> Step:
        st = self.stage
        if st == "switched":
            return self._answer(self.plugin, payload)
        if st == "sha2_full":
            if self.tls:
                clear = payload[:-1] if payload.endswith(b"\0") else payload
                self.path = "sha2-full-tls"
                return self._full_result(self._check_cleartext(clear))
            if payload == bytes([SHA2_REQUEST_PUBLIC_KEY]):
                self._rsa = self._rsa or RsaKeyPair.get()
                self.stage = "sha2_rsa"
                return Step(send=[more_data_payload(self._rsa.public_pem)], plugin=self.plugin)
            # A cleartext password over an unencrypted connection is refused (as mysqld does).
            return self._fail("caching_sha2_password full authentication without TLS needs the RSA key exchange")
        if st == "sha2_rsa":
            rsa = self._rsa or RsaKeyPair.get()
            self.path = "sha2-full-rsa"
            clear = rsa.decrypt_password(payload, self.scramble)
            return self._full_result(clear is not None and self._check_cleartext(clear))
        return self._fail(f"unexpected authentication packet in stage {st}")

    def _answer(self, plugin: str, response: bytes) -> Step:
        self.plugin = plugin
        if plugin == NATIVE:
            if self._password is None and self._native_hash is None:
                return self._fail("no verifier for mysql_native_password")
            ok = native_verify(response, self.scramble, password=self._password, stored_hash=self._native_hash)
            self.path = "native"
            return self._ok() if ok else self._fail("wrong password")
        # caching_sha2_password
        if self._password is not None and not self._password:
            return self._ok() if response == b"" else self._fail("wrong password")
        if response == b"":
            return self._fail("wrong password (empty)")
        key = self._cache_key()
        # Fast auth only after this secret passed full authentication on this listener, as
        # mysqld's cache does (docs/mysql-relay.md); it needs the plaintext or the stored
        # SHA256(SHA256(pw)) of a session login.
        if key in self.fast_cache and (self._password is not None or self._sha2_hash is not None):
            self.path = "sha2-fast"
            if sha2_verify(response, self.scramble, password=self._password,
                           stored_hash=self._sha2_hash):
                return self._ok([more_data_payload(bytes([SHA2_FAST_AUTH_OK]))])
            return self._fail("wrong password")
        self.stage = "sha2_full"
        return Step(send=[more_data_payload(bytes([SHA2_PERFORM_FULL_AUTH]))], plugin=plugin)

    def _full_result(self, ok: bool) -> Step:
        if not ok:
            return self._fail("wrong password")
        self.fast_cache.add(self._cache_key())
        return self._ok()


# --------------------------------------------------------------------------- client side

class BackendAuth:
    """Log in to the database as a client. `first(plugin, scramble)` gives the auth response
    for the HandshakeResponse41; `next(payload)` handles each server packet after it and
    returns ("send", payload) / ("wait", None) / ("ok", payload) / ("fail", reason)."""

    def __init__(self, password: bytes, *, tls: bool):
        self.password = password
        self.tls = tls
        self.plugin = NATIVE
        self.scramble = b""
        self.stage = "sent"

    def first(self, plugin: str, scramble: bytes) -> tuple[str, bytes]:
        self.scramble = scramble
        if plugin not in (NATIVE, SHA2, SHA256, ED25519, CLEAR):
            plugin = NATIVE  # the server will send an auth switch if it needs another one
        if plugin == CLEAR and not self.tls:
            plugin = NATIVE
        self.plugin = plugin
        return plugin, self._response(plugin, scramble)

    def _response(self, plugin: str, scramble: bytes) -> bytes:
        pw = self.password
        if plugin == NATIVE:
            return native_scramble(pw, scramble)
        if plugin == SHA2:
            return sha2_scramble(pw, scramble)
        if plugin == ED25519:
            return ed25519_sign(pw, scramble)
        if plugin in (SHA256, CLEAR):
            if self.tls:
                return pw + b"\0"
            if plugin == SHA256:
                self.stage = "want_key"
                return b"\x01" if pw else b"\0"
        raise ValueError(f"cannot answer authentication plugin {plugin}")

    def next(self, payload: bytes) -> tuple[str, bytes | None]:
        if not payload:
            return "fail", "empty authentication packet from the server"
        head = payload[0]
        if head == 0x00:
            return "ok", payload
        if head == 0xFF:
            return "fail", "server refused the login"
        if head == 0xFE:
            if len(payload) == 1:
                return "fail", "server asked for mysql_old_password, which is insecure and not supported"
            name, _, data = payload[1:].partition(b"\0")
            plugin = name.decode("ascii", "replace")
            if data.endswith(b"\0"):
                data = data[:-1]
            if plugin == CLEAR and not self.tls:
                return "fail", "server asked for a cleartext password over an unencrypted connection"
            if plugin not in (NATIVE, SHA2, SHA256, ED25519, CLEAR):
                return "fail", f"server asked for unsupported authentication plugin {plugin}"
            self.plugin = plugin
            self.scramble = data
            self.stage = "sent"
            try:
                return "send", self._response(plugin, data)
            except Exception as exc:  # noqa: BLE001 -- e.g. PyNaCl missing for ed25519
                return "fail", f"cannot answer {plugin}: {exc}"
        if head == 0x01:
            data = payload[1:]
            if self.stage == "want_key":
                try:
                    return "send", rsa_encrypt_password(self.password, self.scramble, data)
                except Exception as exc:  # noqa: BLE001
                    return "fail", f"bad RSA public key from the server: {exc}"
            if self.plugin == SHA2 and len(data) == 1:
                if data[0] == SHA2_FAST_AUTH_OK:
                    return "wait", None
                if data[0] == SHA2_PERFORM_FULL_AUTH:
                    if self.tls:
                        return "send", self.password + b"\0"
                    self.stage = "want_key"
                    return "send", bytes([SHA2_REQUEST_PUBLIC_KEY])
            return "fail", "unexpected AuthMoreData from the server"
        return "fail", f"unexpected packet 0x{head:02x} during login"
