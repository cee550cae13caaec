"""Monitoring settings and alert delivery as a resource: thresholds, retrain rules, the webhook.

The webhook URL comes from ``MLOPS_ALERT_WEBHOOK`` through ``dg.EnvVar``, so the UI shows the
variable's name, never the URL (which often carries a token). Alerts are POSTed as JSON
``{"alerts": [...]}``; a webhook that fails is logged, never fatal: the alert stays a row of
the ``alerts`` asset marked undelivered, and the next alerting run sends it again (at least once).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import dagster as dg

from mlops_assets.config import DEFAULT_DAGSTER_URL, DEFAULT_DASHBOARD_URL, DEFAULT_MLFLOW_URL, Settings, env_value
from mlops_assets.monitoring.monitor import MonitorLimits
from mlops_assets.monitoring.rules import RetrainRules

WEBHOOK_ENV = "MLOPS_ALERT_WEBHOOK"


def post_alerts(url: str, alerts: list[dict], timeout: float = 5.0) -> str | None:
    """POST ``alerts`` to ``url``; returns None on success, else why it failed. Never raises, and
    never repeats the URL (it often carries a token): only the error's type or the HTTP status."""
    if not url or not alerts:
        return None
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return "not an http(s) URL"
    body = json.dumps({"alerts": alerts}, default=str).encode()
    try:
        request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - operator-configured URL
            return None if 200 <= response.status < 300 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except Exception as exc:  # noqa: BLE001 - an alert channel must never fail the run that raised the alert
        return type(exc).__name__



class MonitoringResource(dg.ConfigurableResource):
    """Monitor limits and retrain rules of this environment, and where alerts go."""

    limits: dict
    rules: dict
    webhook_url: str = ""
    dashboard_url: str = DEFAULT_DASHBOARD_URL  # where `mlops-assets dashboard` serves the persona views
    dagster_url: str = DEFAULT_DAGSTER_URL  # the UIs the dashboard links to
    mlflow_url: str = DEFAULT_MLFLOW_URL

    @classmethod
    def from_settings(cls, settings: Settings) -> "MonitoringResource":
        url = dg.EnvVar(WEBHOOK_ENV) if WEBHOOK_ENV in settings.secrets_in_env else ""
        return cls(limits=settings.monitor.to_json(), rules=settings.retrain.to_json(), webhook_url=url,
                   dashboard_url=settings.dashboard_url, dagster_url=settings.dagster_url,
                   mlflow_url=settings.mlflow_url)

    @property
    def monitor_limits(self) -> MonitorLimits:
        return MonitorLimits(**self.limits)

    @property
    def retrain_rules(self) -> RetrainRules:
        return RetrainRules(**self.rules)

    def notify(self, log, alerts: list[dict]) -> bool:
        """POST ``alerts``; True when they reached the webhook. With no webhook configured nothing
        is delivered: the alerts wait in the ``alerts`` table for one."""
        url = env_value(self.webhook_url)
        if not url or not alerts:
            return False
        failed = post_alerts(url, alerts)
        if failed:
            log.warning(f"alert webhook ({WEBHOOK_ENV}) failed: {failed}; {len(alerts)} alerts not delivered, "
                        "the next alerting run sends them again")
        return failed is None
