"""`python -m livecore`: the same as the `livecore` command."""

from __future__ import annotations

import sys

from livecore.cli import main

sys.exit(main())
