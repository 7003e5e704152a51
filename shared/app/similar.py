"""GET /api/v1/task/{id}/similar (issue 40): the earlier videos closest to a task's, found
through the fingerprint index and judged on their whole fingerprint."""

from __future__ import annotations

from shared.app.context import Services
from shared.app.tasks import get_task
from shared.tasks.models import SimilarQuery, SimilarVideo, SimilarVideos


def similar_videos(services: Services, task_id: str, query: SimilarQuery,
                   team: str | None = None) -> SimilarVideos:
    """Closest first, of `team`'s tasks (None: every team's, an admin); a task without a
    fingerprint lists nothing (and says so). Another team's task is not found."""
    from shared.tasks.fingerprints import CANDIDATES  # numpy: only once it is needed
    from shared.video.similarity import compare

    task = get_task(services, task_id, team)
    store = services.fingerprints
    found = store.get(task.task_id)
    if found is None:
        return SimilarVideos(task_id=task.task_id, fingerprinted=False, videos=[])
    fp_id, fingerprint = found
    videos = []
    candidates = store.candidates(fingerprint, max(query.limit, CANDIDATES), before_id=fp_id)
    for candidate in store.load(candidates, team=team):
        verdict = compare(fingerprint, candidate.fingerprint)
        videos.append(SimilarVideo(
            task_id=candidate.task_id, status=candidate.status or "", match=verdict.match,
            similarity=verdict.similarity, offset_s=verdict.offset_s, scale=verdict.scale,
            duration_delta_s=verdict.duration_delta_s, reason=verdict.reason))
    videos.sort(key=lambda video: -video.similarity)
    return SimilarVideos(task_id=task.task_id, fingerprinted=True, videos=videos[: query.limit])
