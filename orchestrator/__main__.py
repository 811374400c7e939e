"""``python -m orchestrator``: the same as the ``flp`` command."""

import sys

from orchestrator.cli import main

sys.exit(main())
