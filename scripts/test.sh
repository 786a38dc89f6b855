#!/usr/bin/env bash
# Sets up everything, then runs all tests: the C++ suite (ctest; a sanitized
# debug build in which any heap allocation inside a time loop aborts, run
# serially and threaded, then the threaded tests under ThreadSanitizer) and
# the Python suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# Lint, format and type checks of the Python code (configuration in pyproject.toml).
.venv/bin/ruff check python tests/python bench
.venv/bin/ruff format --check python tests/python bench
# mypy checks the package's calls of the core against the stub the build generated
# (copied in for the check only: the wheel installs its own).
cp "$(.venv/bin/python -c 'import lgssm._core as c, pathlib; print(pathlib.Path(c.__file__).with_name("_core.pyi"))')" \
  python/lgssm/_core.pyi
status=0
.venv/bin/mypy || status=$?
rm -f python/lgssm/_core.pyi
[ "$status" -eq 0 ]
# The C++ format (.clang-format).
git ls-files -z '*.cpp' '*.hpp' | xargs -0 .venv/bin/clang-format --dry-run --Werror
# The documentation site, warnings as errors; fails if a public function has no docstring.
bash scripts/docs.sh

# The C++ suite is one build, the asan preset of CMakePresets.json: Debug
# (asserts on), AddressSanitizer + UndefinedBehaviorSanitizer, warnings as
# errors, and any heap allocation inside a time loop aborts. It runs twice:
# with those no-malloc checks, which need parallel_for serial (Eigen's flag is
# process-wide), then with the checks off and the threads on
# (LGSSM_CHECK_NO_MALLOC=0). Then the threaded tests (parallel_test.cpp) under
# ThreadSanitizer. The presets say why -O0 and -O1.
sanitized_build() {  # preset, build dir, cmake --build options
  local preset=$1 dir=$2
  shift 2
  cmake --preset "$preset" >/dev/null
  cmake --build "$dir" -j"$(nproc)" "$@"
}
# GCC 12's sanitizers cannot map their shadow memory when the kernel
# randomizes mmap addresses with more than 28 bits (vm.mmap_rnd_bits = 32 on
# newer kernels); there they run with address randomization off.
no_aslr=()
[ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28)" -le 28 ] || no_aslr=(setarch "$(uname -m)" -R)
sanitized_build asan build/cpp-asan
export ASAN_OPTIONS=halt_on_error=1:print_stacktrace=1:detect_stack_use_after_return=1:strict_init_order=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
"${no_aslr[@]}" ctest --test-dir build/cpp-asan --output-on-failure -j"$(nproc)"
# Threaded, without the 20000 posterior draws of PosteriorSample.MomentsMatchDenseSmoother
# (about 50 s, each draw a smoother pass, and single-threaded: the run above has it).
LGSSM_CHECK_NO_MALLOC=0 "${no_aslr[@]}" ctest --test-dir build/cpp-asan --output-on-failure -j"$(nproc)" \
  -E '^PosteriorSample\.MomentsMatchDenseSmoother$'
sanitized_build tsan build/cpp-tsan --target lgssm_parallel_tests
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  "${no_aslr[@]}" build/cpp-tsan/tests/cpp/lgssm_parallel_tests

# The C++ example, built against the installed CMake package as a user would
# (with the sanitizers the installed build was compiled with).
cmake --install build/cpp-asan --prefix build/install >/dev/null
cmake -S examples/cpp -B build/example -DCMAKE_PREFIX_PATH="$PWD/build/install" \
  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build build/example -j"$(nproc)" >/dev/null
"${no_aslr[@]}" ./build/example/quickstart

.venv/bin/python -m pytest tests/python -q -rs
