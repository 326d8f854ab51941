"""The proxy's SCRAM login to a backend caches the salted password per (password, salt,
iterations) (auth/scram.py `_backend_salted_password`): a role's salt is fixed, so PBKDF2
runs once per role, not once per backend connection. The cache must never let a wrong
password through nor mix up two salts."""

from __future__ import annotations

from sandbox_db_proxy.auth import scram as S


def _login(verifier: S.Verifier, password: str) -> bool:
    server, client = S.ScramServer(verifier), S.ScramClient(password)
    try:
        client.verify(server.final(client.final(server.first(client.first()))))
        return True
    except S.ScramError:
        return False


def test_second_login_reuses_the_key_and_still_verifies():
    v = S.Verifier.from_password("backend-pw-1", b"0123456789abcdef")
    before = S._backend_salted_password.cache_info()
    assert _login(v, "backend-pw-1")
    assert _login(v, "backend-pw-1")
    after = S._backend_salted_password.cache_info()
    assert after.misses == before.misses + 1
    assert after.hits == before.hits + 1


def test_wrong_password_and_other_salt_are_not_confused():
    good = S.Verifier.from_password("backend-pw-2", b"salt-number-one!")
    assert _login(good, "backend-pw-2")
    # a cached key for the right password never makes a wrong one pass, nor the reverse
    assert not _login(good, "backend-pw-2x")
    assert not _login(good, "backend-pw-2x")
    assert _login(good, "backend-pw-2")
    # the same password under another salt (another role or a changed password) is derived anew
    other = S.Verifier.from_password("backend-pw-2", b"salt-number-two!")
    misses = S._backend_salted_password.cache_info().misses
    assert _login(other, "backend-pw-2")
    assert S._backend_salted_password.cache_info().misses == misses + 1
