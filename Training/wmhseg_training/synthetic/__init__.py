"""Synthetic FLAIR with white matter lesions: unlimited, fully labelled training data from anatomy.

SynthSeg-style domain randomisation (Billot et al., Medical Image Analysis 2023) applied to WMH as in
WMH-SynthSeg (Laso et al., ISBI 2024): tissue label maps are deformed, given lesions, and rendered with
random contrast, resolution and artefacts, so a network trained on them meets clinical FLAIR of any
protocol. Start with :class:`SyntheticFlairGenerator` (one sample) or :class:`SyntheticPatchSampler`
(training patches); ``python -m wmhseg_training.synthetic.preview`` draws a gallery to judge realism.
"""

from .anatomy import (
    Anatomy,
    Tissue,
    anatomy_from_segmentation,
    load_mni152,
    load_segmentation,
    phantom_anatomy,
)
from .generator import GeneratorSettings, SyntheticFlairGenerator, SyntheticSample
from .lesions import FAZEKAS_VOLUME_ML

__all__ = [
    "FAZEKAS_VOLUME_ML",
    "Anatomy",
    "GeneratorSettings",
    "SyntheticFlairGenerator",
    "SyntheticSample",
    "Tissue",
    "anatomy_from_segmentation",
    "load_mni152",
    "load_segmentation",
    "phantom_anatomy",
]
