#!/usr/bin/env bash
# Builds the documentation site into build/docs (open build/docs/index.html):
# the pages of docs/ (Markdown), the Python API from the docstrings of the
# lgssm package installed in .venv (run scripts/setup.sh first, and again after
# changing them) and the C++ API from the Doxygen comments of include/lgssm.
# Warnings are errors, and numpydoc validates every public Python object
# (docs/conf.py lists the checks): a missing docstring fails the build.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

if ! command -v doxygen >/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "docs: installing doxygen with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq doxygen >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "docs: the pinned Sphinx needs Python >= 3.11 in .venv" >&2
  exit 1
}
# The pinned tools of pyproject's docs extra, installed only when one is missing
# or at another version (pip would build lgssm itself for ".[docs]").
mapfile -t missing < <(.venv/bin/python - <<'PY'
import tomllib
from importlib import metadata

with open("pyproject.toml", "rb") as fh:
    pins = tomllib.load(fh)["project"]["optional-dependencies"]["docs"]
for pin in pins:
    name, version = pin.split("==")
    try:
        ok = metadata.version(name) == version
    except metadata.PackageNotFoundError:
        ok = False
    if not ok:
        print(pin)
PY
)
if [ ${#missing[@]} -gt 0 ]; then
  echo "docs: installing ${missing[*]} into .venv"
  .venv/bin/python -m pip install -q "${missing[@]}"
fi
.venv/bin/python -c "import lgssm" 2>/dev/null || {
  echo "docs: lgssm is not installed in .venv; run bash scripts/setup.sh first" >&2
  exit 1
}

rm -rf build/docs-xml
mkdir -p build/docs-xml
doxygen docs/Doxyfile
.venv/bin/python -m sphinx -E -W --keep-going -q -b html -d build/docs-doctrees docs build/docs
echo "docs: build/docs/index.html ($((SECONDS - start)) s)"
