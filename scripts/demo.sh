#!/usr/bin/env bash
# Sets up everything, then runs the main job: `lgssm demo`, both seed documents
# end to end (figures, results.json and report.html in ./lgssm-demo unless --out).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/lgssm demo "$@"
