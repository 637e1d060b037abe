"""``python -m hms SUBCOMMAND ...``: the ``hms`` command."""

import sys

from hms.cli import main

sys.exit(main())
