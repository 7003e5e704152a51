"""Argument types shared by the command-line scripts."""

from __future__ import annotations

import argparse
from datetime import date


def day(text: str) -> date:
    """A `YYYY-MM-DD` argument; argparse turns the error into exit code 2 with this text."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None
