"""``python -m podling``: the command line (:mod:`podling.cli.main`; ``kubectl`` is
dispatched before anything heavy is imported)."""

import sys

from .cli.main import main

sys.exit(main())
