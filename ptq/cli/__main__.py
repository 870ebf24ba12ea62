"""``python -m ptq.cli``: the same as the ``ptq`` command."""

import sys

from ptq.cli import main

sys.exit(main())
