"""``python -m imgext``: the command line (see :mod:`imgext.cli`).

One BLAS thread for the command's own process unless the environment asks for
another count (``OPENBLAS_NUM_THREADS``), set before NumPy loads OpenBLAS: the
mix engine already runs on one (:func:`imgext.mix.mixer.single_blas_thread`), and
OpenBLAS's second thread only spun after the few small products made outside it
(relevance scores, analysis): ~0.1 CPU-s of a render, the same bytes written.
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from imgext.cli import main  # noqa: E402  after the thread count is set

if __name__ == "__main__":
    sys.exit(main())
