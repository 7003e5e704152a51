"""Redis Lua scripts live in `.lua` files beside the module that runs them."""

from __future__ import annotations

from pathlib import Path


def read_script(module_file: str, name: str) -> str:
    """The text of `name`, a script in the folder of `module_file` (pass `__file__`)."""
    return (Path(module_file).resolve().parent / name).read_text()
