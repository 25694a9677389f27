"""The engine: volumes with geometry, model bundles, the U-Net and the predictor. Knows nothing of Slicer."""
