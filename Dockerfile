# sandbox-db-proxy: read-only database proxy for AI agents.
#   docker build -t sandbox-db-proxy .
#   docker run --rm -p 5432:5432 sandbox-db-proxy --test-mode        # self-contained demo
#   docker run -v $PWD/config.yaml:/etc/sandbox-db-proxy/config.yaml:ro -p 3306:3306 -p 5432:5432 \
#       -v $PWD/volumes/audit-logs:/app/volumes/audit-logs sandbox-db-proxy
# Multi-stage: the Rust core is compiled into an abi3 wheel with maturin, and only the wheel
# (plus its pure-Python dependencies) goes into the slim runtime image.

# ---- build: Rust toolchain + maturin -> wheel --------------------------------------------
FROM rust:1.95-slim-bookworm AS build
# python3 comes from the pinned bookworm base; its Debian revision is not a contract.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/maturin \
 && /opt/maturin/bin/pip install --no-cache-dir "maturin==1.16.0"
WORKDIR /src
COPY Cargo.toml Cargo.lock pyproject.toml README.md ./
COPY rust ./rust
COPY python ./python
RUN /opt/maturin/bin/maturin build --release --locked --out /wheels \
 && /opt/maturin/bin/pip wheel --no-cache-dir --wheel-dir /wheels "pgserver==0.1.4"

# ---- runtime --------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A fixed, unprivileged uid/gid (no login shell): the proxy needs no root, ports > 1024 only.
RUN groupadd --system --gid 10001 sdp \
 && useradd --system --uid 10001 --gid sdp --home-dir /app --shell /usr/sbin/nologin sdp
COPY --from=build /wheels /tmp/wheels
# The wheel is installed by file name, never by project name, so an index can't substitute it;
# pgserver (the [demo] extra: an embedded PostgreSQL) serves `--test-mode` / `demo`.
RUN pip install --no-cache-dir --find-links /tmp/wheels /tmp/wheels/sandbox_db_proxy-*.whl "pgserver==0.1.4" \
 && rm -rf /tmp/wheels
WORKDIR /app
COPY config.example.yaml /etc/sandbox-db-proxy/config.yaml
RUN mkdir -p /app/volumes/audit-logs \
 && chown -R sdp:sdp /app
USER 10001:10001
# Audit records (volumes/audit-logs/audit.json, relative to WORKDIR /app) outlive the container.
VOLUME ["/app/volumes/audit-logs"]
# MySQL relay, PostgreSQL relay, admin listener (/metrics /livez /readyz).
EXPOSE 3306 5432 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["sandbox-db-proxy", "healthcheck", "--url", "http://127.0.0.1:8080/readyz", "--quiet"]
# SIGTERM drains (limits.drain_timeout_seconds, default 15 s): keep docker stop's timeout above it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["sandbox-db-proxy", "serve"]
CMD ["--config", "/etc/sandbox-db-proxy/config.yaml"]
