"""Segmentation metrics exactly as the WMH challenge and BraTS define them; numpy/scipy only.

The training loop's validation, the command line and the tests all call these two functions.
"""

from .brats import evaluate_brats
from .wmh import evaluate_wmh

__all__ = ["evaluate_brats", "evaluate_wmh"]
