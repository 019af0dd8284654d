"""`python -m allfuse` runs the command line (torchrun uses this form)."""

import sys

from allfuse.cli import main

sys.exit(main())
