"""Tasks: request/result models, the MySQL/SQLite store, queue backends and the pipeline."""
