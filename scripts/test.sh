#!/usr/bin/env bash
# Sets up everything, then runs all tests: the C++ suite (ctest; a debug build
# in which any heap allocation inside a time loop aborts) and the Python suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

cmake -S . -B build/cpp-tests -DCMAKE_BUILD_TYPE=Debug -DLGSSM_BUILD_TESTS=ON \
  -DLGSSM_CHECK_NO_MALLOC=ON >/dev/null
cmake --build build/cpp-tests -j"$(nproc)"
ctest --test-dir build/cpp-tests --output-on-failure -j"$(nproc)"

# The C++ example, built against the installed CMake package as a user would.
cmake --install build/cpp-tests --prefix build/install >/dev/null
cmake -S examples/cpp -B build/example -DCMAKE_PREFIX_PATH="$PWD/build/install" >/dev/null
cmake --build build/example -j"$(nproc)" >/dev/null
./build/example/quickstart

.venv/bin/python -m pytest tests/python -q -rs
