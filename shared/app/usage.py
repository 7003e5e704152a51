"""A team's usage per day (issue 36): what its completed tasks cost, read from the ledger
the completions write (`shared.tasks.team_usage`), never from the task rows."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.app.context import Services
from shared.app.replies import UsageTotals
from shared.errors import NotFound
from shared.teams.keys import check_team

MAX_DAYS = 400


class UsageQuery(BaseModel):
    """Query string of GET /api/v1/teams/{team}/usage."""

    model_config = ConfigDict(extra="forbid")

    days: int = Field(default=30, ge=1, le=MAX_DAYS,
                      description=f"UTC days to answer, today included (1-{MAX_DAYS})")


class TeamDay(UsageTotals):
    """One UTC day of a team: its completed tasks and what they used."""

    day: str
    tasks: int = Field(description="tasks completed that day")


class TeamUsage(BaseModel):
    team: str
    days: list[TeamDay] = Field(description="oldest first, today last")
    total: TeamDay = Field(description="the days summed (`day` is the span)")


def team_usage(services: Services, team: str, query: UsageQuery,
               visible: str | None) -> TeamUsage:
    """`team`'s days; a caller who sees only another team is told it does not exist."""
    check_team(team)
    if visible is not None and visible != team:
        raise NotFound(f"team: no team {team}")
    days = [TeamDay(**day) for day in services.queries.team_days(team, query.days)]
    sums = {name: sum(getattr(day, name) for day in days)
            for name in TeamDay.model_fields if name not in ("day", "cost_usd")}
    total = TeamDay(day=f"{days[0].day}/{days[-1].day}", **sums,
                    cost_usd=round(sum(day.cost_usd for day in days), 6))
    return TeamUsage(team=team, days=days, total=total)
