"""``python -m imgext``: the command line (see :mod:`imgext.cli`)."""

import sys

from imgext.cli import main

if __name__ == "__main__":
    sys.exit(main())
