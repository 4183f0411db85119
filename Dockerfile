# syntax=docker/dockerfile:1
#
# The gateway's container image. Build from the repository root:
#   docker build -t gateway .
# Configuration lives in /etc/gateway (gateway.yaml, routes.yaml, keys/). The sample config/ is
# copied there as a default, but it binds 127.0.0.1 and needs ACCESS_TOKEN_SECRET: mount your
# own directory over it (read-only; a directory, not single files, so live reload sees edits).
# See deploy/README.md.

# Build stage: a virtual environment with the gateway and its runtime dependencies only
# (no test extras, no sources kept). Same base as the runtime stage, so the venv's interpreter
# path is valid there. The install compiles the request path to C (setup.py, mypyc), so this
# stage has a C compiler; GATEWAY_BUILD=compiled fails the build rather than ship plain Python.
# The compiler stays in this stage: the runtime stage gets the built venv only.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 GATEWAY_BUILD=compiled
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY gateway ./gateway
# With its dependencies, uvloop among them: the event loop `gateway run --loop auto` picks
# (README, Performance: the same build answers more with it, the 401 about a quarter more).
RUN /opt/venv/bin/pip install . && /opt/venv/bin/pip uninstall --yes pip

# Runtime stage: the interpreter, the venv, the default config; nothing else.
FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
# A named account for the numeric IDs, so tools that look the user up find one; the process
# runs with the numbers (USER below), which Kubernetes' runAsNonRoot can verify.
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin gateway
COPY --from=build /opt/venv /opt/venv
# Default config (read-only for the gateway user); mount yours at /etc/gateway instead.
COPY config /etc/gateway
USER 10001:10001
# 8080: public listener; 9090: admin (/healthz, /readyz, /metrics), never to be published.
EXPOSE 8080 9090
STOPSIGNAL SIGTERM
# Liveness from the image's own Python (no curl/wget in the image). The admin listener must be
# on port 9090 and bound to 0.0.0.0 or 127.0.0.1. Proxies from the environment are bypassed.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:9090/healthz', timeout=2)"]
ENTRYPOINT ["gateway"]
CMD ["run", "-c", "/etc/gateway/gateway.yaml"]
