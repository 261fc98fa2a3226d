"""``python -m cotyledon.wsgi``: the same as the ``cotyledon-wsgi`` command."""

from __future__ import annotations

import sys

from cotyledon.wsgi._cli import main

if __name__ == "__main__":
    sys.exit(main())
