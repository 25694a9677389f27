"""`python -m wmhseg_training` is `wmhseg-train`."""

import sys

from .cli import main

sys.exit(main())
