"""WMHSegmenter in a browser: the Slicer module's workflow served with trame-slicer.

Slicer's own MRML, views and segment editor run on the server and render offscreen; the page drives
the same scene logic as the Slicer module. Importing this package imports neither trame nor torch:
``app`` brings trame-slicer when the server is built, the predictor brings torch when Segment starts.
"""
