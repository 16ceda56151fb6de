"""`python -m dlprobe` is the `dlprobe` command."""

import sys

from .cli import main

sys.exit(main())
