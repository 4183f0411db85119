#!/usr/bin/env bash
# Install into a fresh virtual environment (.venv) and run every check CI runs:
# lint, format, types, then the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# The install compiles the request path with mypyc (setup.py), which needs a C compiler; without
# one it installs as plain Python and says so. CI installs the compiler and requires the compiled
# build, so that the suite tests what the image ships.
if [ -n "${CI:-}" ]; then
  export GATEWAY_BUILD="${GATEWAY_BUILD:-compiled}"
  if ! command -v cc >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null
  fi
fi
.venv/bin/python -m pip install --quiet -e '.[test]'
# The benchmark's --quick run needs wrk and nginx (Debian packages); CI installs them.
missing_bench_tools=no
command -v wrk >/dev/null || missing_bench_tools=yes
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing_bench_tools=yes
if [ "$missing_bench_tools" = yes ] && [ -n "${CI:-}" ] && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && apt-get install -y -qq wrk nginx-light >/dev/null
fi
# bench/cost.py (instructions per request) runs the gateway under valgrind's callgrind; its smoke
# test skips without valgrind locally and fails under CI=true, so CI installs it.
if ! command -v callgrind_control >/dev/null && [ -n "${CI:-}" ] && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi
# tests/deploy: promtool (package `prometheus`) checks and unit-tests the alerting rules and a
# real /metrics scrape; syslog-ng (`syslog-ng-core`) ships the gateway's log lines end to end.
missing_deploy_tools=no
command -v promtool >/dev/null || missing_deploy_tools=yes
command -v syslog-ng >/dev/null || [ -x /usr/sbin/syslog-ng ] || missing_deploy_tools=yes
if [ "$missing_deploy_tools" = yes ] && [ -n "${CI:-}" ] && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus syslog-ng-core \
    >/dev/null
fi
# The shared rate-limit tests run a real redis-server (Debian package); they skip without it
# locally, and fail under CI=true, so CI installs it.
if ! command -v redis-server >/dev/null && [ ! -x /usr/bin/redis-server ] \
  && [ -n "${CI:-}" ] && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi
# The CORS browser test drives headless Chromium (Debian package); it skips without it locally,
# and fails under CI=true, so CI installs it.
if ! command -v chromium >/dev/null && [ -n "${CI:-}" ] && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
# A real OpenID provider (a Node.js package) for the remote-key integration test, and the
# benchmark's Node peer (fastify, pinned in bench/node/package-lock.json).
if command -v npm >/dev/null 2>&1; then
  npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error
  npm ci --prefix bench/node --no-audit --no-fund --loglevel=error
else
  echo "npm not found: the real-provider test and the benchmark's node-fastify target will be" \
    "skipped (both fail under CI=true)" >&2
fi

echo "== ruff check"
.venv/bin/ruff check setup.py gateway tests bench
echo "== ruff format --check"
.venv/bin/ruff format --check setup.py gateway tests bench
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
set +e
.venv/bin/pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
