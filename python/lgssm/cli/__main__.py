"""``python -m lgssm.cli ARGS``: the same as ``lgssm ARGS``."""

import sys

from .parser import main

sys.exit(main())
