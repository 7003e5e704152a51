"""Processing one task: the stages, the runner that answers a delivery, the reaper
(reconciler) and completion callbacks."""
