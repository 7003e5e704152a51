"""Delete the finished tasks older than TASK_RETENTION_DAYS (archived first when
ARCHIVE_BEFORE_DELETE is on): the retention job the cleanup function runs daily, for the
local stack and by hand.

    python scripts/retention.py

Prints what it did as one JSON object; with TASK_RETENTION_DAYS unset it deletes
nothing and says so.
"""

from __future__ import annotations

import json
import sys

from shared.app.retention import run_retention
from shared.services import get_services


def main() -> int:
    print(json.dumps(run_retention(get_services())), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
