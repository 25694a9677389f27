"""Progress for people (a bar on a terminal) and for programs (JSON lines with --json-progress)."""

from __future__ import annotations

import json
import sys


def print_line(level: str, text: object) -> None:
    """The one line a failure or a warning gets: ``wmhseg: <level>: <file>: <problem>`` on stderr."""
    print(f"wmhseg: {level}: {text}", file=sys.stderr)


def print_error(error: object) -> None:
    print_line("error", error)


class ProgressReporter:
    def __init__(self, json_lines: bool = False, quiet: bool = False, stream=None):
        self.json_lines = json_lines
        self.quiet = quiet
        self.stream = stream or (sys.stdout if json_lines else sys.stderr)
        self.case = None
        self.bar = not json_lines and not quiet and self.stream.isatty()

    def start_case(self, case: str) -> None:
        self.case = case
        self.event("case", status="started")

    def event(self, kind: str, **fields) -> None:
        if self.json_lines:
            self.stream.write(json.dumps({"event": kind, "case": self.case, **fields}) + "\n")
            self.stream.flush()

    def __call__(self, stage: str, fraction: float) -> None:
        if self.json_lines:
            self.event("progress", stage=stage, fraction=round(fraction, 4))
        elif self.bar:
            filled = int(30 * fraction)
            label = f"{self.case}: " if self.case else ""
            self.stream.write(f"\r{label}[{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%} {stage:<12}")
            if fraction >= 1.0:
                self.stream.write("\n")
            self.stream.flush()

    def message(self, text: str) -> None:
        """A line for people; with --json-progress it goes to stderr so stdout stays machine-readable."""
        if not self.quiet:
            print(text, file=sys.stderr if self.json_lines else sys.stdout)

    def remarks(self, prediction) -> None:
        """A prediction's warnings and notes (engine.predictor.Prediction), each in its line."""
        for warning in prediction.warnings:
            self.warning(warning)
        for note in prediction.notes:
            self.note(note)

    def note(self, text: str) -> None:
        """What the user may want to know about a result: a line for people, an event for programs."""
        self.event("note", message=text)
        self.message(f"note: {text}")

    def warning(self, text: str) -> None:
        """What the user should check although the case ran: on stderr even with --quiet, and as an
        event for programs."""
        self.event("warning", message=text)
        print_line("warning", text)

    def failure(self, error: str) -> None:
        """A case that failed, at once on stderr with --quiet ("errors only"), which hides the summary
        that would list it."""
        if self.quiet:
            print_error(error)
