#!/usr/bin/env bash
# Sets up everything, then runs the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python examples/python/quickstart.py "$@"
