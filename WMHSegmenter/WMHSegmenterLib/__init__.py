"""WMHSegmenter: engine, scene logic and front ends for white matter hyperintensity and glioma segmentation.

Importing this package is cheap on purpose (Slicer imports every module at start-up): torch is
imported only by the modules that run a network, and only when work starts.
"""

__version__ = "0.1.0"
