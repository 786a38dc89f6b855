#!/usr/bin/env bash
# Sets up everything, then runs all tests: the C++ suite (ctest; a debug build
# in which any heap allocation inside a time loop aborts, then sanitized builds)
# and the Python suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# Lint, format and type checks of the Python code (configuration in pyproject.toml).
.venv/bin/ruff check python tests/python bench
.venv/bin/ruff format --check python tests/python bench
.venv/bin/mypy
# The documentation site, warnings as errors; fails if a public function has no docstring.
bash scripts/docs.sh

cmake -S . -B build/cpp-tests -DCMAKE_BUILD_TYPE=Debug -DLGSSM_BUILD_TESTS=ON \
  -DLGSSM_CHECK_NO_MALLOC=ON -DLGSSM_WERROR=ON >/dev/null
cmake --build build/cpp-tests -j"$(nproc)"
ctest --test-dir build/cpp-tests --output-on-failure -j"$(nproc)"

# The same suite again with threads on (the no-malloc build above runs
# parallel_for serially), under AddressSanitizer + UndefinedBehaviorSanitizer;
# then the threaded tests (parallel_test.cpp) under ThreadSanitizer. Debug
# keeps the asserts; -O0 for ASan + UBSan (GCC takes 5x longer to compile the
# instrumented Eigen code at -O1, and the tests run in about a minute anyway),
# -O1 for TSan (-O0 TSan code runs several times slower, -O1 compiles as fast).
sanitized_build() {  # build dir, LGSSM_SANITIZE, optimization flag, cmake --build options
  local dir=$1 sanitize=$2 opt=$3
  shift 3
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g $opt" -DLGSSM_BUILD_TESTS=ON \
    -DLGSSM_SANITIZE="$sanitize" >/dev/null
  cmake --build "$dir" -j"$(nproc)" "$@"
}
# GCC 12's sanitizers cannot map their shadow memory when the kernel
# randomizes mmap addresses with more than 28 bits (vm.mmap_rnd_bits = 32 on
# newer kernels); there they run with address randomization off.
no_aslr=()
[ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28)" -le 28 ] || no_aslr=(setarch "$(uname -m)" -R)
sanitized_build build/cpp-asan address,undefined -O0
# Left out: the 20000 posterior draws of PosteriorSample.MomentsMatchDenseSmoother
# (about 50 s under ASan, each draw a smoother pass); posterior_sample still runs
# under ASan in PosteriorSample.DeterministicGivenSeed (3 draws, no inputs).
ASAN_OPTIONS=halt_on_error=1:print_stacktrace=1:detect_stack_use_after_return=1:strict_init_order=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  "${no_aslr[@]}" ctest --test-dir build/cpp-asan --output-on-failure -j"$(nproc)" \
  -E '^PosteriorSample\.MomentsMatchDenseSmoother$'
sanitized_build build/cpp-tsan thread -O1 --target lgssm_parallel_tests
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  "${no_aslr[@]}" build/cpp-tsan/tests/cpp/lgssm_parallel_tests

# The C++ example, built against the installed CMake package as a user would.
cmake --install build/cpp-tests --prefix build/install >/dev/null
cmake -S examples/cpp -B build/example -DCMAKE_PREFIX_PATH="$PWD/build/install" >/dev/null
cmake --build build/example -j"$(nproc)" >/dev/null
./build/example/quickstart

.venv/bin/python -m pytest tests/python -q -rs
