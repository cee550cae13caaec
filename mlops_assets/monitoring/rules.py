"""When a region must be retrained, and why: pure decisions the sensors and the replay share.

Causes, each a value of the run tag ``mlops/trigger``:

- ``level_shift``: once a week's actuals land, its demand (against each series' reference level),
  some of its stores against the others (``spread``) or the forecasts' bias moved beyond its
  limit, this week or over the last 2 or 4 (``monitoring.monitor``); or the region's demand
  against the other regions' (``regional``);
- ``drift``: when the latest week was forecast, its forecasts, a covariate or the mix of series
  moved beyond its limit;
- ``accuracy``: realized MAPE above the target, or above ``degradation`` x the holdout MAPE, in
  at least ``min_bad_weeks`` of the last ``window`` evaluated weeks, the latest among them;
- ``stale``: the champion would be older than ``stale_days`` at the next week it scores;
- ``code_version``: the modelling code differs from the code that trained the champion.

``new_data``, ``schedule`` and ``manual`` tag runs that no rule started.

Every cause but ``code_version`` is acted on only once the region has a week with actuals newer
than the champion's data (``act_or_wait``): a retrain on the same weeks fits the same model, finds
the same drift or age, and would retrain again for ever. In practice this holds back ``drift`` and
``stale`` (``level_shift`` and ``accuracy`` are measured on weeks after the champion's data).
The replay of ``mlops-assets run --json`` applies the causes once a week's actuals have landed, so
nothing there waits.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

TRIGGER_TAG = "mlops/trigger"
REASONS_TAG = "mlops/reasons"
TRIGGERS = ("new_data", "level_shift", "drift", "accuracy", "stale", "code_version", "schedule", "manual")
# when several causes hold at once, the run is tagged with the first of them
PRIORITY = ("code_version", "level_shift", "accuracy", "drift", "stale")


@dataclass(frozen=True)
class RetrainRules:
    mape_target: float = 0.45
    degradation: float = 1.5
    window: int = 5
    min_bad_weeks: int = 2
    stale_days: int = 60

    def to_json(self) -> dict:
        return asdict(self)


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def bad_week(mape: float | None, holdout_mape: float | None, rules: RetrainRules) -> bool:
    if not _finite(mape):
        return False
    return mape > rules.mape_target or (_finite(holdout_mape) and mape > rules.degradation * holdout_mape)


def accuracy_cause(history: list[dict], rules: RetrainRules) -> dict | None:
    """``history``: evaluated weeks, each {week, mape, holdout_mape}. The evidence, or None."""
    recent = sorted(history, key=lambda h: h["week"])[-rules.window:]
    if not recent:
        return None
    bad = [h["week"] for h in recent if bad_week(h.get("mape"), h.get("holdout_mape"), rules)]
    if len(bad) >= rules.min_bad_weeks and bad[-1] == recent[-1]["week"]:
        return {"cause": "accuracy", "week": recent[-1]["week"], "value": recent[-1]["mape"],
                "detail": f"realized MAPE above {rules.mape_target} or {rules.degradation}x the holdout MAPE in "
                          f"{len(bad)} of the last {len(recent)} weeks ({', '.join(bad)})"}
    return None


def _latest_flagged(history: list[dict], cause: str) -> dict | None:
    """The cause, when the latest assessed week of ``history`` (assessments, ``monitoring.monitor``)
    flagged: its week, the signals and the reasons."""
    recent = sorted((h for h in history if h.get("signals")), key=lambda h: h["week"])
    if not recent or not recent[-1].get("flagged"):
        return None
    latest = recent[-1]
    names = sorted(n for n, s in latest["signals"].items() if s.get("flagged"))
    return {"cause": cause, "week": latest["week"], "value": None, "signals": names,
            "detail": "; ".join(latest.get("reasons") or names)}


def level_cause(history: list[dict]) -> dict | None:
    """``history``: the region's weeks assessed once their actuals landed (or compared with the
    other regions'). A change of level is the latest week's demand, stores' spread, bias or
    regional signal."""
    return _latest_flagged(history, "level_shift")


def drift_cause(history: list[dict]) -> dict | None:
    """``history``: the region's weeks assessed when they were forecast. Drift is the latest
    week's forecasts, a covariate or the mix beyond its limit."""
    return _latest_flagged(history, "drift")


def model_age_days(as_of_week: str, week: str) -> int:
    return int((pd.Timestamp(week) - pd.Timestamp(as_of_week)).days)


def stale_cause(as_of_week: str | None, next_week: str, rules: RetrainRules) -> dict | None:
    if not as_of_week:
        return None
    age = model_age_days(as_of_week, next_week)
    if age > rules.stale_days:
        return {"cause": "stale", "week": next_week, "value": age,
                "detail": f"trained on data up to {as_of_week}: {age} days old at {next_week} "
                          f"(limit {rules.stale_days})"}
    return None


def code_cause(champion_code: str | None, current_code: str, week: str) -> dict | None:
    if champion_code and champion_code != current_code:
        return {"cause": "code_version", "week": week, "value": None,
                "detail": f"the champion was trained by model code {champion_code}; the code is now {current_code}"}
    return None


# causes a retrain fixes only by learning from weeks the champion has not seen
NEEDS_NEW_WEEKS = ("level_shift", "accuracy", "drift", "stale")


def act_or_wait(causes: list[dict], as_of_week: str | None, observed_through: str | None) -> tuple[list, list]:
    """(the causes to retrain on now, those that wait for data): a cause of ``NEEDS_NEW_WEEKS``
    waits while the region has observed no week after ``as_of_week``, the champion's last."""
    if not as_of_week or not observed_through or observed_through > as_of_week:
        return list(causes), []
    wait = [c for c in causes if c["cause"] in NEEDS_NEW_WEEKS]
    return [c for c in causes if c not in wait], wait


def primary(causes: list[dict]) -> str:
    names = [c["cause"] for c in causes]
    return next(p for p in PRIORITY if p in names)
