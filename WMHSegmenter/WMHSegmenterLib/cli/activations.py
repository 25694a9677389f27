"""`wmhseg activations`: feature maps and attribution of named U-Net blocks, as volumes and a montage."""

from __future__ import annotations

from pathlib import Path

from ..engine.activations import list_layers
from ..engine.bundle import find_bundle
from ..engine.device import DEVICE_CHOICES
from ..engine.errors import InputError
from ..engine.montage import activation_montage
from ..engine.overlay import AxialPlanes
from ..engine.predictor import Predictor, Progress
from ..engine.volume import check_output_folder, check_output_path
from .common import (
    MODALITIES,
    add_activation_options,
    gradcam_classes,
    parse_layers_and_views,
    write_activation_maps,
)
from .progress import ProgressReporter


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("activations", help="what the network sees: feature maps and Grad-CAM")
    parser.add_argument("--model", required=True)
    for name in MODALITIES:
        parser.add_argument(f"--{name}", type=Path, metavar="FILE")
    parser.add_argument("--list-layers", action="store_true", help="print layer names, channels and stride")
    add_activation_options(parser)
    parser.add_argument("--out", type=Path, help="folder for <layer>_<view>.nii.gz maps")
    parser.add_argument("--montage", type=Path, help="PNG: contracting path on top, expansive path below")
    parser.add_argument(
        "--plane-mm",
        type=float,
        help="height of the montage's axial plane, mm (Slicer's axial slice offset; default: the plane "
        "with the most predicted foreground)",
    )
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=run)


def run(args) -> int:
    bundle = find_bundle(args.model)
    if args.list_layers:
        predictor = Predictor(bundle, device="cpu")
        print(f"{'layer':<12} {'channels':>8}  stride (z, y, x)")
        for info in list_layers(predictor.network):
            print(f"{info.name:<12} {info.channels:>8}  {info.stride}")
        return 0
    if args.out is None and args.montage is None:
        raise InputError("give --out DIR and/or --montage FILE.png (or --list-layers)")
    layers, views = parse_layers_and_views(args)
    if args.montage is not None:
        check_output_path(args.montage, args.overwrite, extensions=(".png",))
    if args.out is not None:
        check_output_folder(args.out)  # created when the maps are written
    inputs = {name: getattr(args, name) for name in MODALITIES if getattr(args, name) is not None}
    predictor = Predictor(bundle, device=args.device)
    reporter = ProgressReporter(quiet=args.quiet)
    progress = Progress(reporter)
    volumes = predictor.read_inputs(inputs, progress)
    reference = volumes[bundle.input_names[0]]
    planes = AxialPlanes(reference)
    if args.montage is not None and args.plane_mm is not None:
        try:
            plane = planes.nearest(args.plane_mm)
        except InputError as error:  # the option is wrong for this image: name both
            raise InputError(f"--plane-mm: {error.problem}", inputs[bundle.input_names[0]]) from None
    recorder = predictor.activation_recorder(layers, gradcam_classes(views), args.region)
    try:
        prediction = predictor.predict(volumes, progress, sources=inputs, recorder=recorder)
        reporter.remarks(prediction)
        written = []
        if args.out is not None:
            written += write_activation_maps(
                prediction.activations, reference, views, args.out, args.grid, args.overwrite
            )
        if args.montage is not None:
            order = predictor.network.block_names()
            if args.plane_mm is None:
                plane = planes.busiest(prediction.labels)
            written.append(
                activation_montage(
                    prediction.activations, order, planes.grid(plane), views[0], args.montage, args.overwrite
                )
            )
    finally:
        recorder.close()
    if not args.quiet:
        print(f"wrote {len(written)} file(s): {', '.join(map(str, written))}")
    return 0
