"""Entry point of `wmhseg`: sub-commands register themselves; errors are reported here, once."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ..engine.allocator import keep_freed_memory
from ..engine.errors import Cancelled, InputError
from . import activations, demo, evaluate, models, segment, web
from .progress import print_error, print_line

SUBCOMMANDS = (models, segment, evaluate, activations, web, demo)
#: Subcommands that serve until stopped: they give freed memory back (engine.allocator).
LONG_LIVED = ("web",)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wmhseg", description="Segment white matter hyperintensities and gliomas with a 3D U-Net."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in SUBCOMMANDS:
        command.add_parser(subparsers)
    return parser


class _OneLineWarnings(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        print_line(record.levelname.lower(), record.getMessage())


def main(argv: list[str] | None = None) -> int:
    logger = logging.getLogger("wmhseg")
    if not logger.handlers:
        logger.addHandler(_OneLineWarnings())
        logger.setLevel(logging.WARNING)
        logger.propagate = False
    args = build_parser().parse_args(argv)
    if args.command not in LONG_LIVED:
        keep_freed_memory()
    try:
        return args.func(args)
    except InputError as error:
        print_error(error)
        return 2
    except Cancelled:
        print("wmhseg: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("wmhseg: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader left (`wmhseg evaluate ... | head`): stop quietly, as Unix tools do; stdout goes
        # to /dev/null so the interpreter's final flush cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
