"""`python -m dlprobe` is the `dlprobe` command."""

from .cli import run_as_command

run_as_command()
