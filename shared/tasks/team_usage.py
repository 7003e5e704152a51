"""What each team's completed tasks used, per UTC day (`team_days`, issue 36): added to
in the transaction that completes a task, so a crash can neither lose nor double it;
never taken from, so deleting or retiring tasks keeps the bill."""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa

from shared.tasks.rollups import Share, upsert
from shared.tasks.schema import USAGE_COLUMNS, team_days
from shared.tasks.schema import video_tasks as t


def record(conn: sa.Connection, task_id: str, completed: Share) -> None:
    """A task just completed with `completed`'s usage: its team's day gets it."""
    team = conn.execute(sa.select(t.c.team).where(t.c.task_id == task_id)).scalar_one()
    ended = completed.ended
    assert ended is not None
    upsert(conn, team_days, ("team", "day"), [{
        "team": team, "day": ended.date(), "tasks": 1,
        **dict(zip(USAGE_COLUMNS, completed.usage, strict=True))}])


def days(conn: sa.Connection, team: str, last: date, count: int) -> list[dict[str, object]]:
    """The team's `count` days up to `last`, oldest first (zeros where nothing ran)."""
    first = last - timedelta(days=count - 1)
    rows = {row.day if isinstance(row.day, date) else date.fromisoformat(str(row.day)): row
            for row in conn.execute(sa.select(team_days).where(
                team_days.c.team == team, team_days.c.day >= first, team_days.c.day <= last))}
    shown = []
    for back in range(count - 1, -1, -1):
        day = last - timedelta(days=back)
        row = rows.get(day)
        figures = {name.removeprefix("usage_"): int(getattr(row, name)) if row else 0
                   for name in USAGE_COLUMNS[:-1]}
        cost = int(row.usage_cost_micro_usd) if row else 0
        shown.append({"day": day.isoformat(), "tasks": int(row.tasks) if row else 0,
                      **figures, "cost_usd": cost / 1_000_000})
    return shown
