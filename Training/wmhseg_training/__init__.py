"""Retraining WMHSegmenter's U-Net outside Slicer: dataset layouts in, a model bundle out.

Everything the product also does (U-Net, preprocessing, prediction, metrics, bundles) is imported from
the engine, so a trained model behaves in Slicer exactly as it did in validation.
"""
