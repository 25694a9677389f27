"""`wmhseg web`: the segmentation workflow in a browser, served by trame-slicer from this machine.

Binds 127.0.0.1 unless told otherwise: the page reads and writes the data folder with this user's
rights, so exposing it on a network is a decision to take on purpose. trame-slicer is imported only
when the command runs, so `wmhseg` starts without it; rendering is offscreen (EGL) where there is no
display, which is how servers and CI machines run it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..engine.errors import InputError

INSTALL_HINT = "wmhseg web needs trame-slicer: pip install 'wmhsegmenter[web]'"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("web", help="segment, review and correct in a browser (trame-slicer)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1, this machine only)"
    )
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (0: any free port)")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("."),
        help="folder whose cases the page lists and opens, and where corrections are saved (default: .)",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    if not args.data.is_dir():
        raise InputError("data folder not found", args.data)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    # trame reads its own options from the command line unless given them here: keep ours to ourselves
    os.environ.setdefault("TRAME_ARGS", "--server")
    try:
        from ..web.app import WebApp
    except ModuleNotFoundError as error:
        if error.name and error.name.split(".")[0] in ("trame", "trame_slicer", "trame_server", "undo_stack"):
            raise InputError(INSTALL_HINT) from None
        raise
    print(f"wmhseg web: data folder {args.data.resolve()}", flush=True)
    WebApp(args.data).start(args.host, args.port)
    return 0
