"""`wmhseg web` options: local-only by default; a missing data folder fails before anything starts."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from WMHSegmenterLib.cli import web
from WMHSegmenterLib.engine.errors import InputError


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    web.add_parser(parser.add_subparsers())
    return parser.parse_args(["web", *argv])


def test_defaults_bind_this_machine_only_and_serve_the_current_folder():
    args = parse()
    assert (args.host, args.port, args.data) == ("127.0.0.1", 8080, Path("."))
    assert args.func is web.run


def test_a_missing_data_folder_is_refused_before_the_server_starts(tmp_path):
    with pytest.raises(InputError, match="data folder not found"):
        web.run(parse("--data", str(tmp_path / "absent")))
