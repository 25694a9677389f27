"""Scene logic: MRML nodes <-> engine volumes, segmentations, statistics, and the Segment workflow.

Qt-free on purpose: it imports MRML classes from ``slicer`` but never qt, ctk or slicer.app, so the
same code runs in the Slicer module, in a browser (trame-slicer) and in tests on PyPI's slicer-core.
Nothing here imports torch; the predictor does, when work starts.
"""
