"""Notes, warnings and error messages of a command on stderr, each on one line."""

from __future__ import annotations

import sys


def note(args, message: str):
    if not args.quiet:
        print(message, file=sys.stderr)


def warn(args, message: str):
    """A warning: one line on stderr, shown even with --quiet."""
    print(f"lgssm {args.command}: warning: {one_line(message)}", file=sys.stderr)


def one_line(message: str) -> str:
    """``message`` on one line: its non-blank lines, stripped, joined by "; "."""
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())
