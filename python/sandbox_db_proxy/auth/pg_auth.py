"""The proxy logging in to a PostgreSQL backend with the backend's configured credentials
(PostgreSQL docs, "Message Flow" > "Start-up", and "Authentication Methods").

Sans-I/O: feed each Authentication* request ('R' message: code + data) to
`BackendAuth.on_request`; it returns the bytes to send back (a PasswordMessage-family 'p'
message), or None when nothing is to be sent. Supported: trust (AuthenticationOk right away),
cleartext password (3), MD5 (5), SASL SCRAM-SHA-256 (10/11/12). Anything else (Kerberos,
GSSAPI, SSPI) is refused with a clear error rather than guessed at.
"""

from __future__ import annotations

import hashlib
import struct

from sandbox_db_proxy.auth.scram import MECHANISM, ScramClient, ScramError

AUTH_OK = 0
AUTH_KERBEROS_V5 = 2
AUTH_CLEARTEXT = 3
AUTH_MD5 = 5
AUTH_GSS = 7
AUTH_GSS_CONTINUE = 8
AUTH_SSPI = 9
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12


class BackendAuthError(Exception):
    """The backend asked for something the proxy cannot or will not do."""


def _p(body: bytes) -> bytes:
    return b"p" + struct.pack("!i", len(body) + 4) + body


def md5_password(user: str, password: str, salt: bytes) -> str:
    """'md5' + md5(md5(password || user) || salt) (protocol "AuthenticationMD5Password")."""
    inner = hashlib.md5(password.encode() + user.encode()).hexdigest()
    return "md5" + hashlib.md5(inner.encode() + salt).hexdigest()


class BackendAuth:
    __slots__ = ("user", "password", "scram", "done", "method")

    def __init__(self, user: str, password: str | None):
        self.user = user
        self.password = password
        self.scram: ScramClient | None = None
        self.done = False
        self.method = "trust"

    def _need_password(self, what: str) -> str:
        if self.password is None:
            raise BackendAuthError(f"the backend asks for {what} but no password is configured")
        return self.password

    def on_request(self, code: int, data: bytes) -> bytes | None:
        if code == AUTH_OK:
            if self.scram is not None and self.method == "scram-sha-256" and not self.done:
                # SCRAM must finish with a verified server signature before AuthenticationOk;
                # otherwise a fake server could skip the step that proves it knows the secret.
                raise BackendAuthError("backend sent AuthenticationOk before completing SCRAM")
            self.done = True
            return None
        if code == AUTH_CLEARTEXT:
            self.method = "password"
            return _p(self._need_password("a cleartext password").encode() + b"\0")
        if code == AUTH_MD5:
            if len(data) != 4:
                raise BackendAuthError("malformed AuthenticationMD5Password")
            self.method = "md5"
            return _p(md5_password(self.user, self._need_password("an MD5 password"), data).encode() + b"\0")
        if code == AUTH_SASL:
            mechs = [m.decode("utf-8", "replace") for m in data.split(b"\0") if m]
            if MECHANISM not in mechs:
                raise BackendAuthError(f"backend offers SASL mechanisms {mechs}; only {MECHANISM} is supported")
            self.method = "scram-sha-256"
            self.scram = ScramClient(self._need_password("SCRAM-SHA-256"))
            first = self.scram.first().encode()
            return _p(MECHANISM.encode() + b"\0" + struct.pack("!i", len(first)) + first)
        if code == AUTH_SASL_CONTINUE:
            if self.scram is None:
                raise BackendAuthError("SASLContinue without SASL")
            try:
                return _p(self.scram.final(data.decode("utf-8")).encode())
            except (ScramError, UnicodeDecodeError) as exc:
                raise BackendAuthError(f"SCRAM exchange with the backend failed: {exc}") from exc
        if code == AUTH_SASL_FINAL:
            if self.scram is None:
                raise BackendAuthError("SASLFinal without SASL")
            try:
                self.scram.verify(data.decode("utf-8"))
            except (ScramError, UnicodeDecodeError) as exc:
                raise BackendAuthError(f"SCRAM exchange with the backend failed: {exc}") from exc
            self.done = True
            return None
        names = {AUTH_KERBEROS_V5: "Kerberos V5", AUTH_GSS: "GSSAPI", AUTH_GSS_CONTINUE: "GSSAPI",
                 AUTH_SSPI: "SSPI"}
        raise BackendAuthError(f"backend requests unsupported authentication {names.get(code, code)}")
