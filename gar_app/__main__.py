"""``python -m gar_app`` is ``gar-app``."""

import sys

from gar_app.cli import main

sys.exit(main())
