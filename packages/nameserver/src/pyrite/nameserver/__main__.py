"""``python -m pyrite.nameserver``: run a name server (same options as ``pyrite-ns``)."""

import sys

from .cli import main

sys.exit(main())
