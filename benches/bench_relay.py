"""Python cost of one relayed statement, without sockets (issue 6: "profile ... and put what
you found in the closing note").

    .venv/bin/python benches/bench_relay.py [--seconds 1.0] [--profile]

Drives the sans-I/O MySQL state machine (protocols/mysql.py) exactly as the I/O layer does:
one client chunk in (a sysbench-style COM_QUERY with a new literal each time, or a
COM_STMT_EXECUTE of a prepared point select), one backend chunk out (a one-row result), with
the real engine, metrics and audit log (records are queued and serialised as in production;
the file write itself is left out). What remains per statement is what the proxy's own
Python costs on top of the kernel's socket work, which `benches/run.py` measures from /proc.
CPU time (process_time), best of several passes: the machines are shared.
"""

from __future__ import annotations

import argparse
import os
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
        audit._write_pending_to(lambda data: None) if hasattr(audit, "_write_pending_to") else _drain_old(audit)

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


def _drain_old(audit) -> None:
    import orjson
    q = audit._q
    batch = [q.popleft() for _ in range(len(q))]
    b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS, default=str)
             if isinstance(r, dict) else r for r in batch)


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
