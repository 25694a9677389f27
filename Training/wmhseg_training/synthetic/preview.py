"""A PNG gallery of synthetic samples (axial slices, lesion outlines in red) for a person to judge realism.

python -m wmhseg_training.synthetic.preview --anatomy /path/to/mni152 --out gallery.png --n 8 --seed 0
    [--real flair.nii.gz --real-lesions lesions.nii.gz]   # a real FLAIR tile to compare against
    [--phantom]                                            # no files needed

Each tile shows the slice with the most lesion voxels and a caption: Fazekas grade, lesion volume in the
sample, contrast mode (flair or random) and the simulated protocol.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.volume import Geometry, publish_file, read_volume

from .anatomy import Anatomy, load_mni152, load_segmentation, phantom_anatomy
from .generator import GeneratorSettings, SyntheticFlairGenerator, SyntheticSample

CAPTION_HEIGHT = 14
OUTLINE = np.array([255, 40, 40], dtype=np.uint8)


def tile(
    image: np.ndarray, labels: np.ndarray, geometry: Geometry, axial_axis: int, caption: str
) -> np.ndarray:
    """An RGB tile (uint8): the axial slice with the most lesion voxels, anterior up, patient's right left."""
    counts = labels.sum(axis=tuple(a for a in range(3) if a != axial_axis))
    index = int(np.argmax(counts)) if counts.any() else image.shape[axial_axis] // 2
    picture = np.take(image, index, axis=axial_axis).astype(np.float32)
    lesion = np.take(labels, index, axis=axial_axis) > 0
    direction = geometry.direction_matrix
    rows_axis, columns_axis = [
        2 - a for a in range(3) if a != axial_axis
    ]  # index axes (x=0) of rows, columns
    if direction[1, rows_axis] < 0:  # rows run toward anterior (LPS y falls): put anterior up
        picture, lesion = picture[::-1], lesion[::-1]
    if direction[0, columns_axis] < 0:  # columns run toward the patient's right: radiological view wants left
        picture, lesion = picture[:, ::-1], lesion[:, ::-1]
    visible = picture[picture != 0]
    low, high = np.percentile(visible, [0.5, 99.5]) if visible.size else (0.0, 1.0)
    grey = (np.clip((picture - low) / max(high - low, 1e-6), 0, 1) * 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    rgb[lesion & ~ndimage.binary_erosion(lesion)] = OUTLINE
    canvas = Image.new("RGB", (rgb.shape[1], rgb.shape[0] + CAPTION_HEIGHT))
    canvas.paste(Image.fromarray(rgb), (0, CAPTION_HEIGHT))
    ImageDraw.Draw(canvas).text((2, 1), caption, fill=(255, 255, 0))
    return np.asarray(canvas)


def sample_tile(sample: SyntheticSample) -> np.ndarray:
    info = sample.info
    caption = f"F{info['fazekas']} {info['lesion_ml_in_sample']:.1f}ml {info['contrast']} {info['protocol']}"
    return tile(
        sample.image.array, sample.labels.array, sample.image.geometry, info["superior_axis"], caption
    )


def gallery(tiles: Sequence[np.ndarray], columns: int = 3) -> Image.Image:
    """Tiles on a grid (each centred in a cell of the largest tile's size)."""
    height = max(t.shape[0] for t in tiles)
    width = max(t.shape[1] for t in tiles)
    rows = -(-len(tiles) // columns)
    canvas = np.zeros((rows * height, min(columns, len(tiles)) * width, 3), dtype=np.uint8)
    for number, picture in enumerate(tiles):
        top = (number // columns) * height + (height - picture.shape[0]) // 2
        left = (number % columns) * width + (width - picture.shape[1]) // 2
        canvas[top : top + picture.shape[0], left : left + picture.shape[1]] = picture
    return Image.fromarray(canvas)


def write_gallery(
    generator: SyntheticFlairGenerator,
    out: str | Path,
    count: int,
    seed: int,
    real: tuple[str | Path, str | Path | None] | None = None,
    columns: int = 3,
    overwrite: bool = False,
) -> Path:
    """Generate ``count`` whole-brain samples from ``seed`` and write their gallery as a PNG."""
    rng = np.random.default_rng(seed)
    tiles = [sample_tile(generator.generate(rng)) for _ in range(count)]
    if real is not None:
        image = read_volume(real[0])
        labels = read_volume(real[1]).array if real[1] else np.zeros(image.shape, dtype=np.uint8)
        axial = 2 - int(np.argmax(np.abs(image.geometry.direction_matrix[2])))
        tiles.append(tile(image.array, labels, image.geometry, axial, f"REAL {Path(real[0]).parent.name}"))
    picture = gallery(tiles, columns)
    return publish_file(
        lambda path: picture.save(path, format="PNG", optimize=True), out, overwrite=overwrite
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wmhseg_training.synthetic.preview", description="Write a gallery of synthetic FLAIR."
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--anatomy", type=Path, help="MNI152 folder (t1, gm, wm maps)")
    source.add_argument("--segmentation", type=Path, help="a tissue label map (see --classes)")
    source.add_argument("--phantom", action="store_true", help="a built-in ellipsoid head, no files needed")
    parser.add_argument("--classes", default="freesurfer", help="label preset of --segmentation")
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--n", type=int, default=8, help="number of samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--columns", type=int, default=3)
    parser.add_argument("--spacing", type=float, default=1.0, help="isotropic voxel size of the samples, mm")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("Z", "Y", "X"), help="sample size in voxels")
    parser.add_argument("--real", type=Path, help="a real FLAIR to show beside the samples")
    parser.add_argument("--real-lesions", type=Path, help="its lesion mask")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        anatomy: Anatomy
        if args.phantom:
            anatomy = phantom_anatomy(max(args.spacing, 1.0), with_head=True)
        elif args.segmentation:
            anatomy = load_segmentation(args.segmentation, args.classes)
        else:
            anatomy = load_mni152(args.anatomy)
        real = (args.real, args.real_lesions) if args.real else None
        settings = GeneratorSettings(spacing_xyz_mm=(args.spacing,) * 3)
        if args.shape:
            settings = replace(settings, shape_zyx=tuple(args.shape))
        path = write_gallery(
            SyntheticFlairGenerator([anatomy], settings),
            args.out,
            args.n,
            args.seed,
            real,
            args.columns,
            args.overwrite,
        )
    except InputError as error:
        print(f"preview: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
