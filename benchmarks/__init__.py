"""dlprobe's performance benchmarks: each case times a dlprobe fast path against the baseline people use.

    python -m benchmarks                    # every case at full size (tens of minutes on 2 cores)
    python -m benchmarks --case 1,2,4       # selected cases
    python -m benchmarks --smoke            # every case at toy sizes, seconds (the test runs this)
    python -m benchmarks --case 5 --runs 20 # end-to-end critical points with 20 runs on both sides

Prints a table and writes benchmarks/results.json (see __main__.py for its layout). One module per case:
ensemble_training (1), dense_hessian (2), top_eigenvalues (3), interpolation (4), critical_points (5, with
its reference implementation in critical_reference), suite (6).
"""

import sys
from pathlib import Path

try:  # an installed dlprobe (pip install -e .) is used as is; otherwise the checkout's src/
    import dlprobe  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
