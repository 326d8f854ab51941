"""Python cost of one relayed statement, without sockets (issue 6: "profile ... and put what
you found in the closing note").

    .venv/bin/python benches/bench_relay.py [--seconds 1.0] [--profile]

Drives the sans-I/O state machines (protocols/mysql.py, protocols/postgres.py) exactly as
the I/O layer does: one client chunk in, one backend chunk out, with the real engine, metrics
and audit log (records are queued and serialised as in production; the file write itself is
left out). MySQL: a sysbench-style COM_QUERY with a new literal each time, and a
COM_STMT_EXECUTE of a prepared point select. PostgreSQL: pgbench -S in its three modes
(simple Query with a new literal; extended Parse/Bind/Describe/Execute/Sync; prepared
Bind/Execute/Sync of a named statement), each answered by a one-row result. What remains per statement is what the proxy's own
Python costs on top of the kernel's socket work, which `benches/run.py` measures from /proc.
CPU time (process_time), best of several passes: the machines are shared.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from sandbox_db_proxy import _native as N  # noqa: E402
from sandbox_db_proxy.config import load_config_text  # noqa: E402
from sandbox_db_proxy.server.app import ProxyApp  # noqa: E402


def _tune() -> None:
    # The same allocator setting `serve` makes (commands/serve.py tune_process).
    import ctypes
    import ctypes.util
    try:
        ctypes.CDLL(ctypes.util.find_library("c")).mallopt(-1, 256 * 1024 * 1024)
    except (OSError, AttributeError, TypeError):
        pass


def one_row_result(seq0: int = 1) -> bytes:
    """Column count, one column definition, EOF, one text row, EOF (no DEPRECATE_EOF)."""
    return (N.mysql_frame(b"\x01", seq0)
            + N.mysql_frame(b"\x03def\x06sbtest\x07sbtest1\x07sbtest1\x01c\x01c\x0c\x08\x00\x78\x00\x00\x00"
                            b"\xfe\x00\x00\x00\x00\x00", seq0 + 1)
            + N.mysql_eof(seq0 + 2, 0, 2) + N.mysql_frame(b"\x78" + b"7" * 120, seq0 + 3)
            + N.mysql_eof(seq0 + 4, 0, 2))


def mysql_session(audit_path: str):
    import test_mysql_sansio as T
    cfg = load_config_text(T.make_config(T.Srv, "shop", audit_path), env={})
    app = ProxyApp(cfg)
    s, io = T.logged_in(app)
    return app, s, io


def best_cpu_per_call(fn, n: int, seconds: float) -> float:
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while True:
        t0 = time.process_time()
        fn(n)
        best = min(best, (time.process_time() - t0) / n)
        if time.perf_counter() >= deadline:
            return best


def bench_mysql(seconds: float) -> dict:
    tmp = tempfile.mkdtemp(prefix="sdp-bench-relay-")
    app, s, io = mysql_session(os.path.join(tmp, "audit.json"))
    audit = app.audit
    resp = one_row_result()
    queries = [N.mysql_frame(b"\x03SELECT c FROM sbtest1 WHERE id=" + str(i).encode(), 0) for i in range(20000)]
    # prepare once (the sysbench --db-ps-mode=auto path)
    s.client_data(N.mysql_frame(b"\x16SELECT c FROM sbtest1 WHERE id=?", 0))
    io.backend.clear()
    prep_ok = (N.mysql_frame(b"\x00\x07\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00", 1)
               + N.mysql_frame(b"\x03def\x00\x00\x00\x01?\x00\x0c\x3f\x00\x15\x00\x00\x00\x08\x80\x00\x00\x00\x00", 2)
               + N.mysql_eof(3, 0, 2)
               + N.mysql_frame(b"\x03def\x06sbtest\x07sbtest1\x07sbtest1\x01c\x01c\x0c\x08\x00\x78\x00\x00\x00"
                               b"\xfe\x00\x00\x00\x00\x00", 4)
               + N.mysql_eof(5, 0, 2))
    s.backend_data(prep_ok)
    io.client.clear()
    assert 7 in s.stmts, "prepare did not pass"
    execute = N.mysql_frame(b"\x17\x07\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\x03\x00\x05\x00\x00\x00", 0)

    def drain():
        io.client.clear()
        io.backend.clear()
        # The writer thread is not started: serialise what it would write, then drop it.
        _drain_old(audit)

    def run_query(n):
        cd, bd = s.client_data, s.backend_data
        for i in range(n):
            cd(queries[i % 20000])
            bd(resp)
            if i % 512 == 511:
                drain()

    def run_execute(n):
        cd, bd = s.client_data, s.backend_data
        for i in range(n):
            cd(execute)
            bd(resp)
            if i % 512 == 511:
                drain()

    run_query(2000)
    run_execute(2000)
    out = {"COM_QUERY us": best_cpu_per_call(run_query, 5000, seconds) * 1e6,
           "COM_STMT_EXECUTE us": best_cpu_per_call(run_execute, 5000, seconds) * 1e6}
    assert not s.closed
    return out


def _pg_msg(tag: bytes, body: bytes) -> bytes:
    return tag + struct.pack("!i", len(body) + 4) + body


def _pg_backend_reply(with_parse: bool, with_describe: bool, simple: bool) -> bytes:
    """What PostgreSQL answers to one pgbench -S transaction (protocol "Message Flow")."""
    out = b""
    if with_parse:
        out += _pg_msg(b"1", b"")                               # ParseComplete
    if not simple:
        out += _pg_msg(b"2", b"")                               # BindComplete
    if with_describe or simple:
        out += _pg_msg(b"T", struct.pack("!h", 1) + b"abalance\0" + struct.pack("!ihihih", 16398, 2, 23, 4, -1, 0))
    out += _pg_msg(b"D", struct.pack("!h", 1) + struct.pack("!i", 4) + b"-123")
    out += _pg_msg(b"C", b"SELECT 1\0")
    out += _pg_msg(b"Z", b"I")
    return out


def pg_session(audit_path: str):
    import test_pg_helpers as H
    from sandbox_db_proxy.audit import ConnContext
    from sandbox_db_proxy.protocols import postgres as P

    class _Srv:
        host, port, user, password = "127.0.0.1", 5432, "u", "p"

    class Sink:
        def __init__(self):
            self.n = 0

        def send_client(self, d):
            self.n += len(d)

        def send_backend(self, d):
            self.n += len(d)

        def close_client(self):
            raise AssertionError("closed")

        close_backend = close_client

        def connect_backend(self):
            pass

        def start_client_tls(self):
            pass

        def cancel(self, pid, key):
            pass

    app = ProxyApp(load_config_text(H.make_config(_Srv, "bench", audit_path), env={}))
    ctx = ConnContext(H.BACKEND, "postgresql", client_address="127.0.0.1", client_port=50000,
                      server_address="127.0.0.1", server_port=5432)
    ctx.update(agent="agent", database="bench")
    s = P.PgSession(app, H.BACKEND, Sink(), ctx)
    s.state = P.READY
    s.backend_key = (1, b"\0\0\0\1")
    return app, s


def bench_pg(seconds: float) -> dict:
    tmp = tempfile.mkdtemp(prefix="sdp-bench-relay-")
    app, s = pg_session(os.path.join(tmp, "audit.json"))
    audit = app.audit
    sql = "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"
    simple = [_pg_msg(b"Q", f"SELECT abalance FROM pgbench_accounts WHERE aid = {i};".encode() + b"\0")
              for i in range(20000)]
    bind = lambda name: _pg_msg(b"B", b"\0" + name + b"\0" + struct.pack("!hh", 0, 1) + struct.pack("!i", 5)  # noqa: E731
                                + b"12345" + struct.pack("!h", 0))
    extended = (_pg_msg(b"P", b"\0" + sql.encode() + b"\0" + struct.pack("!h", 0)) + bind(b"")
                + _pg_msg(b"D", b"P\0") + _pg_msg(b"E", b"\0" + struct.pack("!i", 0)) + _pg_msg(b"S", b""))
    s.client_data(_pg_msg(b"P", b"P0_1\0" + sql.encode() + b"\0" + struct.pack("!h", 0)) + _pg_msg(b"S", b""))
    s.backend_data(_pg_msg(b"1", b"") + _pg_msg(b"Z", b"I"))
    prepared = bind(b"P0_1") + _pg_msg(b"E", b"\0" + struct.pack("!i", 0)) + _pg_msg(b"S", b"")
    r_simple = _pg_backend_reply(False, False, True)
    r_ext = _pg_backend_reply(True, True, False)
    r_prep = _pg_backend_reply(False, False, False)

    def drain():
        q = audit._q
        _drain_old(audit)
        q.clear()

    def runner(msgs, reply):
        def run(n):
            cd, bd = s.client_data, s.backend_data
            for i in range(n):
                cd(msgs[i % len(msgs)])
                bd(reply)
                if i % 512 == 511:
                    drain()
        return run

    out = {}
    for name, msgs, reply in (("simple", simple, r_simple), ("extended", [extended], r_ext),
                              ("prepared", [prepared], r_prep)):
        run = runner(msgs, reply)
        run(2000)
        out[f"pgbench {name} us"] = best_cpu_per_call(run, 5000, seconds) * 1e6
    from sandbox_db_proxy.protocols import postgres as P
    assert not s.inflight and s.state == P.READY, "session left READY"
    return out


def _drain_old(audit) -> None:
    """What the writer thread does with a batch (serialise, join), minus the file write."""
    from sandbox_db_proxy import audit as audit_mod
    q = audit._q
    batch = [q.popleft() for _ in range(len(q))]
    b"".join([audit_mod._queued_line(r) for r in batch])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--profile", action="store_true", help="cProfile the COM_QUERY loop")
    args = ap.parse_args()
    _tune()
    if args.profile:
        import cProfile
        import pstats
        tmp = tempfile.mkdtemp(prefix="sdp-bench-relay-")
        app, s, io = mysql_session(os.path.join(tmp, "audit.json"))
        resp = one_row_result()
        qs = [N.mysql_frame(b"\x03SELECT c FROM sbtest1 WHERE id=" + str(i).encode(), 0) for i in range(20000)]
        pr = cProfile.Profile()
        pr.enable()
        for q in qs:
            s.client_data(q)
            s.backend_data(resp)
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(25)
        return 0
    for k, v in bench_mysql(args.seconds).items():
        print(f"mysql {k}: {v:.2f}")
    for k, v in bench_pg(args.seconds).items():
        print(f"postgres {k}: {v:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
