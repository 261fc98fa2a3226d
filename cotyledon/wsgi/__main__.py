"""``python -m cotyledon.wsgi``: the same as the ``cotyledon-wsgi`` command."""

from __future__ import annotations

import sys

from cotyledon.wsgi._cli import main

if __name__ == "__main__":
    # Process titles are built from argv[0]: name the command, not ".../__main__.py".
    sys.argv[0] = "cotyledon-wsgi"
    sys.exit(main())
