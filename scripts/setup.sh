#!/usr/bin/env bash
# Installs everything lgssm needs on a fresh Debian machine and builds the
# Python package into .venv. Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -f /usr/include/eigen3/Eigen/Core ] || missing+=(libeigen3-dev)
[ -f /usr/include/gtest/gtest.h ] || missing+=(libgtest-dev)
[ -f /usr/include/benchmark/benchmark.h ] || missing+=(libbenchmark-dev)
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "setup: installing ${missing[*]} with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
echo "setup: building and installing lgssm into .venv"
.venv/bin/python -m pip install -q ".[test,dask,lint]"
# The JAX extra (lgssm.jax, optax, blackjax, arviz) and the peers (dynamax, pykalman,
# statsmodels, ...), which serve only the parity tests and the benchmarks; if they
# cannot be installed, the tests that need them skip and say why.
.venv/bin/python -m pip install -q ".[jax]" ||
  echo "setup: WARNING: the jax extra could not be installed; its tests will be skipped"
.venv/bin/python -m pip install -q ".[peers]" ||
  echo "setup: WARNING: the peers could not be installed; parity tests will be skipped"
