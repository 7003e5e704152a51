"""Deploy entry: Cloud Functions loads `main.py`; each function has its own --entry-point.

`python main.py` runs the whole local stack (api, worker, consumer), supervised, like the
original service's `python main.py` (see scripts/stack.py)."""

import functions_framework
from werkzeug.exceptions import HTTPException

from functions.api import api
from functions.cleanup import cleanup
from functions.http import framework_error
from functions.worker import process_task
from shared.config import get_settings
from shared.logs import setup_logging
from shared.services import check_vocabulary

_settings = get_settings()
check_vocabulary(_settings.tagging)  # a bad vocabulary stops the process here, like before
setup_logging(_settings.logs.LOG_LEVEL, _settings.logs.LOG_FORMAT)

# the framework's own answers (a path its router refuses, 405, 413, a crash) in the envelope
functions_framework.errorhandler(HTTPException)(framework_error)
functions_framework.errorhandler(500)(framework_error)

__all__ = ["api", "process_task", "cleanup"]

if __name__ == "__main__":
    import sys

    from scripts.stack import main

    sys.exit(main(sys.argv[1:]))
