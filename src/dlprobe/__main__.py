"""`python -m dlprobe` is the `dlprobe` command."""

import sys

try:
    from .cli import run_as_command
except KeyboardInterrupt:  # Ctrl-C while Python is still loading the command: nothing has started yet
    print("\ndlprobe: interrupted; run the same command again to resume where it stopped", file=sys.stderr)
    sys.exit(130)

run_as_command()
