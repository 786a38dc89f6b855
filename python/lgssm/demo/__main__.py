"""``python -m lgssm.demo [--out DIR] [--small] [--quiet]``: the same as ``lgssm demo``."""

import sys

from ..cli import main

sys.exit(main(["demo", *sys.argv[1:]]))
