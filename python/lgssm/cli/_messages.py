"""Progress notes and warnings of a command on stderr."""
from __future__ import annotations

import sys


def note(args, message: str):
    if not args.quiet:
        print(message, file=sys.stderr)


def warn(args, message: str):
    """A warning: one line on stderr, shown even with --quiet."""
    print(f"lgssm {args.command}: warning: " + "; ".join(line.strip() for line in message.splitlines() if line.strip()),
          file=sys.stderr)
