"""The task record, persistence only: request/result models, the `video_tasks` schema and
migrations, the store (state machine), read-only queries, batches and Gemini batch jobs."""
