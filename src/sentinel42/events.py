"""Names of the Prefect events Sentinel42 emits.

The task wrappers (:mod:`sentinel42.tasks`) emit them; the automations
(:mod:`sentinel42.ops.alerts`) listen for them. Both import the names from here, so ``ops``
does not sit above ``tasks``.
"""

from __future__ import annotations

NO_DATA_EVENT = "sentinel42.refresh.no-data"
DECISIONS_EVENT = "sentinel42.decisions.recorded"
DECISION_ACTIONABLE_EVENT = "sentinel42.decision.actionable"
MODEL_DEGRADED_EVENT = "sentinel42.model.degraded"
MODEL_RECOVERED_EVENT = "sentinel42.model.recovered"
MODEL_REFUSED_EVENT = "sentinel42.model.refused"
