"""``python -m tools.simfield``: see :mod:`tools.simfield.cli`."""

import sys

from tools.simfield.cli import main

if __name__ == "__main__":
    sys.exit(main())
