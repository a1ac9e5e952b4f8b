"""How many property-based examples a test runs: all of them in the full suite, a tenth in the fast loop.

The fast development loop (``pytest -m "not slow"``) sets ``IMGEXT_TEST_QUICK=1`` (see
``conftest.pytest_configure``); the full suite, which CI runs, tries every example the
tests promise and checks the promised floors.
"""

from __future__ import annotations

import os

QUICK = os.environ.get("IMGEXT_TEST_QUICK") == "1"
"""True in the fast loop."""


def examples(n: int) -> int:
    """``n`` hypothesis examples in the full suite; a tenth of them (at least 10) in the fast loop."""
    return max(10, n // 10) if QUICK else n
