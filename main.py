"""Deploy entry: Cloud Functions loads `main.py`; each function has its own --entry-point."""

from functions.api import api
from functions.cleanup import cleanup
from functions.worker import process_task
from shared.config import get_settings
from shared.logs import setup_logging

_settings = get_settings()
setup_logging(_settings.LOG_LEVEL, _settings.LOG_FORMAT)

__all__ = ["api", "process_task", "cleanup"]
