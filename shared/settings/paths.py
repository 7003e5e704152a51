"""Where the checkout and the embedded defaults' files are (read at import)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
"""Repository root: embedded defaults (SQLite file, Redis socket, videos) live under `var/`."""

VAR_DIR = Path(os.environ.get("VAR_DIR") or ROOT / "var")
"""Where the embedded defaults keep their files (database, Redis, videos, logs, the stack's
lock): `var/` of the checkout, or the environment's VAR_DIR (read at import, not from
`.env`: a second local stack beside the first, a test's own folder)."""
