#!/usr/bin/env bash
# Sets up everything, builds and runs the C++ kernels (Google Benchmark), then
# runs the peer comparison and writes docs/benchmarks.md. Not part of CI;
# takes about ten minutes. Extra arguments go to bench/run.py (e.g. --smoke,
# --out FILE). See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

cmake --preset bench >/dev/null
cmake --build build/bench -j"$(nproc)" --target lgssm_kernels
./build/bench/bench/cpp/lgssm_kernels --benchmark_out=build/bench/kernels.json --benchmark_out_format=json

.venv/bin/python bench/run.py --kernels build/bench/kernels.json --save build/bench/results.json \
  --out docs/benchmarks.md "$@"
