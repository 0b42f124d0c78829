#!/usr/bin/env bash
# Install everything the test suite needs, then run it: static checks, the render gate, pytest.
# Usage: bash ci/test.sh [pytest args...]
# As root on Debian it installs the Debian packages the engine tests use (docker.io,
# docker-registry, busybox-static, iproute2, openssl); the project goes into ./.venv.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(docker.io docker-registry busybox-static iproute2 openssl)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "ci/test.sh: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy --strict"
.venv/bin/mypy
echo "== toolkit render --check"
.venv/bin/toolkit render --check
echo "== pytest"
.venv/bin/python -m pytest "$@"
