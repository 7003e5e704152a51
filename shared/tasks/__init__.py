"""The task record: request/result models, the `video_tasks` schema and migrations, the
store (state machine and queries), and the operations behind the HTTP API."""
