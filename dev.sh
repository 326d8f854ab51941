#!/usr/bin/env bash
# The project's two entry points (README quick start):
#   ./dev.sh demo   build into ./.venv and run the proxy on its embedded default
#   ./dev.sh test   install what the tests need, build, run cargo tests and the pytest suite
# Other subcommands: build (venv + extension only), bench (benches/run.py).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
VENV=$ROOT/.venv
PY=${PYTHON:-python3}

# Debian packages the test suite and benchmarks use (real servers and real clients).
DEB_PACKAGES=(postgresql postgresql-contrib mariadb-server mariadb-client pgbouncer haproxy sysbench
              libmariadb-dev pkg-config freetds-bin build-essential)

need_debian() {
    local missing=()
    for p in "${DEB_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "==> apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null || true
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

build() {
    if [ ! -x "$VENV/bin/python" ]; then
        echo "==> creating $VENV"
        "$PY" -m venv "$VENV"
    fi
    "$VENV/bin/pip" install -q --upgrade pip maturin >/dev/null
    echo "==> building the native extension and installing the package (${1:-runtime})"
    if [ "${1:-}" = test ]; then
        "$VENV/bin/pip" install -q -e ".[test]"
    else
        "$VENV/bin/pip" install -q -e ".[demo]"
    fi
}

case "${1:-}" in
    demo)
        build
        shift
        exec "$VENV/bin/sandbox-db-proxy" demo "$@"
        ;;
    build)
        build test
        ;;
    test)
        shift
        need_debian
        build test
        echo "==> cargo test (pure Rust core)"
        cargo test -q -p sdp_core
        echo "==> pytest"
        exec "$VENV/bin/python" -m pytest -q "$@"
        ;;
    bench)
        shift
        need_debian
        build test
        exec "$VENV/bin/python" benches/run.py "$@"
        ;;
    *)
        echo "usage: $0 {demo|test|build|bench}" >&2
        exit 2
        ;;
esac
