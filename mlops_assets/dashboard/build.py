"""The three persona views over every region, from what the graph stored, as one static HTML page.

- **Business**: forecast against actual per region and week, MAPE against the 0.45 target and
  against the historical-average baseline over the weeks, and the latest week's forecast totals.
- **Data science**: the monitoring signals per week against their limits, segment metrics, champion versions and gate
  verdicts over time, and what drives each segment (LASSO coefficients, permutation attributions
  of both members).
- **Support**: the last runs and their failures, stale champions, freshness of every table,
  quarantined rows and the open alerts.

Every figure names and links its lineage: the registered model version and its MLflow run, and
the Dagster run and partition that produced it. The key figures come back as numbers too, so the
``monitoring_dashboard`` asset's metadata plots them over time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from urllib.parse import quote

import dagster as dg
import numpy as np
import pandas as pd

from mlops_assets.config import DEFAULT_DAGSTER_URL, DEFAULT_MLFLOW_URL
from mlops_assets.contract.validation import TABLES
from mlops_assets.dashboard.charts import bar_chart, esc, heatmap, line_chart
from mlops_assets.ml import metrics
from mlops_assets.ml.ensemble import SEGMENTS
from mlops_assets.monitoring import monitor
from mlops_assets.registry.tracking import Registry, registered_name
from mlops_assets.resources.storage import StorageResource

PAGE = "dashboard/index.html"  # where the page is written, under the storage root
RECENT_WEEKS = 8  # the features an attribution is measured on
RUNS_SHOWN = 30
DRIFT_WEEKS = 26  # the drift map's latest weeks


@dataclass
class Links:
    """Where the UIs are; the page links each figure to them (settings ``MLOPS_DAGSTER_URL`` and
    ``MLOPS_MLFLOW_URL``, by default where ``mlops-assets ui`` and ``mlflow-ui`` serve)."""

    dagster: str = DEFAULT_DAGSTER_URL
    mlflow: str = DEFAULT_MLFLOW_URL
    experiment_id: str = ""

    def run(self, run_id: str) -> str:
        return f"{self.dagster}/runs/{run_id}"

    def asset(self, key: str, partition: str | None = None) -> str:
        url = f"{self.dagster}/assets/{key}"
        return url + (f"?view=partitions&partition={quote(partition)}" if partition else "")

    def model_version(self, region: str, version: str) -> str:
        return f"{self.mlflow}/#/models/{registered_name(region)}/versions/{version}"

    def mlflow_run(self, run_id: str) -> str:
        return f"{self.mlflow}/#/experiments/{self.experiment_id}/runs/{run_id}"


def a(url: str, text) -> str:
    return f'<a href="{esc(url)}">{esc(text)}</a>'


@dataclass
class Page:
    html: str
    figures: dict = field(default_factory=dict)  # numeric key figures, for the asset's metadata


def _weeks(storage: StorageResource, asset: str, region: str) -> list[str]:
    return storage.files(f"{asset}/{region}")


def _read_weeks(storage: StorageResource, asset: str, region: str, weeks: list[str], **kw) -> list[pd.DataFrame]:
    return [storage.read_parquet(f"{asset}/{region}/{week}.parquet", **kw) for week in weeks]


def _regions(storage: StorageResource, registry: Registry) -> list[str]:
    found = set(registry.regions())
    for asset in ("scores", "features"):
        root = storage.path / asset
        if root.is_dir():
            found |= {p.name for p in root.iterdir() if p.is_dir()}
    return sorted(found)


def _table(frame: pd.DataFrame, links: dict[str, callable] | None = None, cls: str = "") -> str:
    """An HTML table; ``links``: column -> function(row) giving (url, text) for that cell."""
    if frame.empty:
        return '<p class="none">none</p>'
    links = links or {}
    shown = [c for c in frame.columns if not str(c).startswith("_")]  # _class: the row's style
    head = "".join(f"<th>{esc(c)}</th>" for c in shown)
    body = []
    for _, row in frame.iterrows():
        cells = []
        for c in shown:
            if c in links:
                url, text = links[c](row)
                cells.append(f"<td>{a(url, text) if url else esc(text)}</td>")
            else:
                v = row[c]
                if isinstance(v, (float, np.floating)) and np.isfinite(v):
                    # counts and units whole, rates and errors to 3 places
                    text = f"{v:,.0f}" if v == round(v) or abs(v) >= 100 or "units" in str(c) else f"{v:.3f}"
                else:
                    text = "" if v is None or (isinstance(v, float) and not np.isfinite(v)) else v
                cells.append(f"<td>{esc(text)}</td>")
        body.append(f'<tr class="{esc(row.get("_class", ""))}">' + "".join(cells) + "</tr>")
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


class _Region:
    """What the page shows of one region, read once."""

    def __init__(self, region: str, storage: StorageResource, registry: Registry, training_runs: dict):
        self.region = region
        self.champion = registry.champion(region)
        self.retired = registry.retired(region)  # None for a region never registered
        self.model = registry.load_forecast_model(self.champion) if self.champion else None
        self.training_run = (self.champion.tags.get("dagster_run_id") if self.champion else None) or \
            training_runs.get((region, self.champion.version if self.champion else None))
        holdout = f"holdout_forecasts/{region}/{self.training_run}.parquet"
        self.holdout = storage.read_parquet(holdout) if self.training_run and storage.exists(holdout) else \
            pd.DataFrame()
        weeks = _weeks(storage, "scores", region)
        self.scores = list(zip(weeks, _read_weeks(storage, "scores", region, weeks)))
        self.accuracy = pd.concat(_read_weeks(storage, "forecast_accuracy", region,
                                              _weeks(storage, "forecast_accuracy", region)) or [pd.DataFrame()],
                                  ignore_index=True)
        self.drift = pd.concat(_read_weeks(storage, "drift_metrics", region, _weeks(storage, "drift_metrics", region))
                               or [pd.DataFrame()], ignore_index=True)
        self.regional = pd.concat(_read_weeks(storage, "regional_comparison", region,
                                              _weeks(storage, "regional_comparison", region))
                                  or [pd.DataFrame()], ignore_index=True)
        actual = [w for w in _weeks(storage, "net_demand", region) if w in set(weeks)]
        self.demand = dict(zip(actual, _read_weeks(storage, "net_demand", region, actual,
                                                   columns=["store_id", "product_id", "net_demand"])))
        self.actual = {w: float(frame["net_demand"].sum()) for w, frame in self.demand.items()}

    def weekly(self) -> pd.DataFrame:
        """Per week: forecast, baseline and actual totals and MAPEs. The holdout weeks are the
        champion's evaluation (each forecast one week ahead by the model fit before them); later
        weeks are the forecasts that served, with their actuals once landed."""
        rows = []
        if len(self.holdout):
            for week, part in self.holdout.groupby("week_start"):
                rows.append({"week": week.strftime("%Y-%m-%d"), "source": "holdout",
                             "forecast": part["ensemble"].sum(), "baseline": part["baseline"].sum(),
                             "p10": part["p10"].sum() if "p10" in part else None,
                             "p90": part["p90"].sum() if "p90" in part else None,
                             "actual": part["target"].sum(), "mape": metrics.mape(part["target"], part["ensemble"]),
                             "baseline_mape": metrics.mape(part["target"], part["baseline"])})
        realized = {}
        if len(self.accuracy):
            region_rows = self.accuracy[self.accuracy["scope"] == "region"]
            realized = {w.strftime("%Y-%m-%d"): r
                        for w, r in zip(region_rows["week_start"], region_rows.to_dict("records"))}
        holdout_weeks = {r["week"] for r in rows}
        for week, scores in self.scores:
            if week in holdout_weeks or scores.empty:
                continue
            r = realized.get(week, {})
            rows.append({"week": week, "source": "served", "forecast": float(scores["forecast"].sum()),
                         "baseline": None, "actual": self.actual.get(week),
                         "p10": float(scores["p10"].sum()) if "p10" in scores else None,
                         "p90": float(scores["p90"].sum()) if "p90" in scores else None,
                         "mape": r.get("mape"), "baseline_mape": r.get("baseline_mape")})
        return pd.DataFrame(rows).sort_values("week").reset_index(drop=True) if rows else pd.DataFrame()

    def stocking(self) -> dict | None:
        """What stocking every store and product to its P90 forecast would have left over or left
        short, summed over the weeks that served forecasts and whose actuals landed (the holdout
        weeks when none has yet)."""
        parts, source = [], "served"
        for week, scores in self.scores:
            if week in self.demand and len(scores) and "p90" in scores:
                demand = self.demand[week]
                joined = scores[["store_id", "product_id", "p90"]].merge(
                    demand, on=["store_id", "product_id"], how="outer")
                parts.append(pd.DataFrame({"stock": joined["p90"].fillna(0.0),
                                           "demand": joined["net_demand"].fillna(0.0)}))
        if not parts and len(self.holdout) and "p90" in self.holdout:
            parts, source = [pd.DataFrame({"stock": self.holdout["p90"], "demand": self.holdout["target"]})], "holdout"
        if not parts:
            return None
        rows = pd.concat(parts, ignore_index=True)
        weeks = len([w for w, s in self.scores if w in self.demand]) if source == "served" else \
            self.holdout["week_start"].nunique()
        return stocking_summary(rows["stock"], rows["demand"]) | {"weeks": weeks, "source": source}


def stocking_summary(stock, demand) -> dict:
    """Units stocked and demanded, left over (stocked, not sold) and short (demanded, not stocked)
    when every row is stocked to ``stock``; fill rate = demand served / demand."""
    stock, demand = np.asarray(stock, dtype=float), np.asarray(demand, dtype=float)
    over, short = np.clip(stock - demand, 0, None).sum(), np.clip(demand - stock, 0, None).sum()
    total = demand.sum()
    return {"stocked": float(stock.sum()), "demand": float(total), "left_over": float(over), "short": float(short),
            "fill_rate": float(1 - short / total) if total > 0 else float("nan"),
            "rows_short": float(np.mean(demand > stock)) if len(demand) else float("nan")}


def build_dashboard(storage: StorageResource, instance: dg.DagsterInstance, registry: Registry,
                    stale_after_days: int, mape_target: float, links: Links | None = None) -> Page:
    links = links or Links()
    with registry._session() as client:  # noqa: SLF001 - the experiment the runs are in, for their links
        links.experiment_id = registry.experiment_id(client)
    model_events = _model_events(instance)
    training_runs = {(e["region"], str(e["registered version"])): e["run_id"] for e in model_events}
    regions = {r: _Region(r, storage, registry, training_runs) for r in _regions(storage, registry)}
    figures: dict = {"regions": len(regions)}
    business, figures_b = _business(regions, links, mape_target)
    science = _science(regions, storage, registry, model_events, links)
    support, figures_s = _support(regions, storage, instance, links, stale_after_days)
    figures.update(figures_b)
    figures.update(figures_s)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    html = TEMPLATE.format(stamp=esc(stamp), business=business, science=science, support=support,
                           dagster=esc(links.dagster), mlflow=esc(links.mlflow),
                           summary=esc(", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                                 for k, v in figures.items())))
    return Page(html, figures)


def _model_events(instance: dg.DagsterInstance) -> list[dict]:
    out = []
    result = instance.fetch_materializations(dg.AssetKey("region_model"), limit=500)
    for record in result.records:
        meta = record.asset_materialization.metadata

        def value(*keys, meta=meta):  # today's key, then the one materializations made before it
            return next((meta[k].value for k in keys if k in meta), None)

        registered, champion = value("registered version", "registered_version"), value("champion version",
                                                                                          "champion_version")
        out.append({"region": record.asset_materialization.partition, "at": dt.datetime.fromtimestamp(
            record.timestamp, dt.timezone.utc).strftime("%Y-%m-%d %H:%M"), "run_id": record.run_id,
            "registered version": "" if registered is None else str(registered),
            "gate verdict": value("gate verdict", "gate_verdict") or "",
            "champion version": "" if champion is None else str(champion),
            "ensemble MAPE": value("ensemble MAPE", "region ensemble mape"),
            "baseline MAPE": value("baseline MAPE", "region baseline mape"),
            "mlflow run": value("mlflow run", "mlflow_run_id") or ""})
    return sorted(out, key=lambda e: e["at"])


def _lineage(r: _Region, links: Links) -> str:
    if r.champion is None:
        return "no champion: the historical-average baseline serves"
    parts = [a(links.model_version(r.region, r.champion.version), f"{registered_name(r.region)} v{r.champion.version}"),
             a(links.mlflow_run(r.champion.run_id), f"MLflow run {r.champion.run_id[:8]}")]
    if r.training_run:
        parts.append(a(links.run(r.training_run), f"Dagster run {r.training_run[:8]}"))
    parts.append(a(links.asset("region_model", r.region), "region_model partition"))
    return " · ".join(parts)


def _business(regions: dict[str, _Region], links: Links, target: float) -> tuple[str, dict]:
    out, figures, region_mapes, reductions = [], {}, {}, []
    totals = []
    for name, r in regions.items():
        weekly = r.weekly()
        out.append(f'<div class="card"><h3>{esc(name)}</h3><p class="lineage">{_lineage(r, links)}</p>')
        if weekly.empty:
            out.append('<p class="none">no forecasts yet</p></div>')
            continue
        x = weekly["week"].tolist()
        band = None
        if "p10" in weekly and weekly["p10"].notna().any():
            band = (weekly["p10"].tolist(), weekly["p90"].tolist(), "forecast P10 to P90")
        out.append(line_chart(x, {"actual": weekly["actual"].tolist(),
                                  "forecast (ensemble)": weekly["forecast"].tolist(),
                                  "baseline": weekly["baseline"].tolist()},
                              f"{name}: forecast vs actual units per week", dashed=("baseline",), y_label="units",
                              band=band))
        stock = r.stocking()
        if stock:
            where = "served weeks with actuals" if stock["source"] == "served" else \
                "holdout weeks (no served week has its actuals yet)"
            out.append(f'<p class="stocking">Stocking every store and product to its P90 over the {stock["weeks"]} '
                       f'{where}: {stock["stocked"]:,.0f} units for {stock["demand"]:,.0f} demanded; '
                       f'<b>{stock["left_over"]:,.0f} left over</b> '
                       f'({stock["left_over"] / max(stock["demand"], 1):.0%} of demand), '
                       f'<b>{stock["short"]:,.0f} short</b> (fill rate {stock["fill_rate"]:.1%}, '
                       f'{stock["rows_short"]:.0%} of store-product weeks short).</p>')
        out.append(line_chart(x, {"ensemble MAPE": weekly["mape"].tolist(),
                                  "baseline MAPE": weekly["baseline_mape"].tolist()},
                              f"{name}: MAPE per week (target {target})", hline=(target, f"target {target}"),
                              dashed=("baseline MAPE",)))
        if r.model is not None and "region" in r.model.evaluation:
            ev = r.model.evaluation["region"]
            region_mapes[name] = ev["ensemble"]["mape"]
            reductions.append(ev["mape_reduction_vs_baseline"])
            out.append(f'<p>holdout MAPE {ev["ensemble"]["mape"]:.3f} (baseline {ev["baseline"]["mape"]:.3f}, '
                       f'{ev["mape_reduction_vs_baseline"]:.0%} lower); weeks after the holdout: the forecasts that '
                       'served, and their realized MAPE once the actuals landed.</p>')
        out.append("</div>")
        if r.scores:
            week, scores = r.scores[-1]
            seg = scores.groupby("segment")["forecast"].sum()
            totals.append({"region": name, "week": week, "forecast units": float(scores["forecast"].sum()),
                           **{s: float(seg.get(s, 0.0)) for s in SEGMENTS}, "rows": len(scores),
                           "model": str(scores["model_version"].iloc[0]) if len(scores) else "",
                           "_run": str(scores["mlflow_run_id"].iloc[0]) if len(scores) else ""})
    figures.update({"mean ensemble MAPE": float(np.mean(list(region_mapes.values()))) if region_mapes else None,
                    "worst region MAPE": float(max(region_mapes.values())) if region_mapes else None,
                    "regions within MAPE target": sum(v <= target for v in region_mapes.values()),
                    "mean MAPE reduction vs baseline": float(np.mean(reductions)) if reductions else None})
    frame = pd.DataFrame(totals)
    table = _table(frame.drop(columns=["_run"]) if len(frame) else frame, {
        "week": lambda row: (links.asset("scores", f"{row['region']}|{row['week']}"), row["week"]),
        "model": lambda row: (links.model_version(row["region"], row["model"].rsplit("/", 1)[-1])
                              if "/" in row["model"] else "", row["model"])})
    html = ("<h2>The latest week's forecast totals</h2>" + table +
            "<h2>Forecast against actual, and MAPE over the weeks</h2>" + "".join(out))
    return html, {k: v for k, v in figures.items() if v is not None}


def _science(regions: dict[str, _Region], storage: StorageResource, registry: Registry, model_events: list[dict],
             links: Links) -> str:
    """The data scientists' page: each champion's segment metrics, the versions and verdicts over
    time, every monitoring signal by week, and what drives each segment."""
    return "".join([_segment_metrics(regions, links), _version_history(regions, registry, model_events, links),
                    _signal_panels(regions, links), _drivers(regions, storage, links)])


def _segment_metrics(regions: dict[str, _Region], links: Links) -> str:
    out = ["<h2>Segment metrics of each champion (holdout)</h2>"]
    rows = []
    for name, r in regions.items():
        if r.model is None:
            continue
        for segment in SEGMENTS:
            rep = r.model.evaluation["segments"].get(segment, {})
            if "skipped" in rep:
                rows.append({"region": name, "segment": segment, "status": "skipped: " + rep["skipped"]})
                continue
            if not rep:
                continue
            rows.append({"region": name, "segment": segment, "status": "trained",
                         **{f"{m} MAPE": rep[m]["mape"] for m in ("ensemble", "lasso", "nn", "baseline")},
                         "RMSE (actual = 0)": rep["ensemble"]["rmse0"], "reduction": rep["mape_reduction_vs_baseline"],
                         "LASSO weight": rep["hyperparameters"]["ensemble_weight_lasso"],
                         "version": r.champion.version})
    out.append(_table(pd.DataFrame(rows), {"version": lambda row: (links.model_version(row["region"], row["version"]),
                                                                   f"v{row['version']}")}))
    return "".join(out)


def _version_history(regions: dict[str, _Region], registry: Registry, model_events: list[dict], links: Links) -> str:
    out = ["<h2>Champion versions and gate verdicts over time</h2>"]
    history = pd.DataFrame(model_events)
    if len(history):
        history["_class"] = np.where(history["gate verdict"].astype(str).str.startswith("passed"), "", "bad")
        for name in regions:
            part = history[history["region"] == name]
            champs = pd.to_numeric(part["champion version"], errors="coerce")
            if len(part):
                out.append(line_chart(part["at"].tolist(), {"champion version": champs.tolist(),
                                                            "registered version": pd.to_numeric(
                                                                part["registered version"], errors="coerce").tolist()},
                                      f"{name}: versions at each training", width=420, height=180))
        out.append(_table(history[["region", "at", "registered version", "gate verdict", "champion version",
                                   "ensemble MAPE", "baseline MAPE", "run_id", "mlflow run", "_class"]].iloc[::-1], {
            "run_id": lambda row: (links.run(row["run_id"]), row["run_id"][:8]),
            "mlflow run": lambda row: (links.mlflow_run(row["mlflow run"]) if row["mlflow run"] else "",
                                       str(row["mlflow run"])[:8]),
            "registered version": lambda row: (links.model_version(row["region"], row["registered version"])
                                               if row["registered version"] else "", f"v{row['registered version']}")}))
    for name in regions:
        try:
            log = registry.champion_log(name)
        except Exception:  # noqa: BLE001 - a region with no registered model yet
            log = []
        if log:
            out.append(f"<h3>{esc(name)}: promotions and rollbacks</h3>" + _table(pd.DataFrame(log)))
    return "".join(out)


def _signal_panels(regions: dict[str, _Region], links: Links) -> str:
    out = ["<h2>Monitoring signals per week</h2><p>Each signal against its limit (monitoring/monitor.py): "
               "z over the limit of the window that came closest (this week, or the mean of the last 2 or 4), "
               "so 1 is the limit and beyond it the week is flagged. Demand: each series against its reference "
               "level; vs other regions: that demand less the region's share of the other regions' in the same "
               "week (regional_comparison); stores apart: some stores against the others (each in its own scale, "
               "one-sided: only a widening flags); bias: actual demand against the forecasts; all four once the "
               "week's actuals landed. Forecasts, "
               "covariates and the mix: when the week was forecast.</p>"]
    for name, r in regions.items():
        signals = _signal_rows(r)
        if signals.empty:
            out.append(f"<h3>{esc(name)}</h3><p class='none'>no week monitored yet</p>")
            continue
        weeks = sorted(signals["week"].unique())[-DRIFT_WEEKS:]
        signals = signals[signals["week"].isin(weeks)]
        closest = _closest(signals)
        series = {label: [closest.get((signal, w)) for w in weeks] for signal, label in monitor.LABELS.items()
                  if any((signal, w) in closest for w in weeks)}
        series.update({"limit": [1.0] * len(weeks), "-limit": [-1.0] * len(weeks)})
        out.append(f"<h3>{esc(name)}</h3><p class='lineage'>against "
                   f"{esc(', '.join(sorted(signals['model_version'].dropna().unique())))}'s reference · "
                   f"{a(links.asset('forecast_accuracy', f'{name}|{weeks[-1]}'), 'latest forecast_accuracy partition')}"
                   f" · {a(links.asset('drift_metrics', f'{name}|{weeks[-1]}'), 'latest drift_metrics partition')}</p>")
        out.append(line_chart(weeks, series, f"{name}: level and bias signals (z / limit)", width=560, height=200))
        closures = signals[signals["signal"] == "stores"]
        signals = signals[signals["signal"] != "stores"]  # a note, no statistic against a limit
        rows_ = sorted(set(signals["signal"]))
        flagged: dict[tuple[str, str], bool] = {}  # by any of its windows
        for row in signals.to_dict("records"):
            key = (row["signal"], row["week"])
            flagged[key] = flagged.get(key, False) or bool(row["flagged"])

        def value(signal, week, closest=closest, flagged=flagged, signals=signals):
            ratio = closest.get((signal, week))
            if ratio is None:
                return None, False, "not measured"
            hit = flagged.get((signal, week), False)
            shown = max(ratio, 0.0) if signal in monitor.UPWARD else abs(ratio)  # flagged upwards only
            return shown, hit, f"{'FLAGGED' if hit else 'ok'}, {shown:.2f} of the limit"
        out.append(heatmap(rows_, weeks, value, f"{name}: every signal by week (share of its limit)",
                           legend="grey: not measured; a black border: flagged"))
        if len(closures):
            out.append("<p>Closed stores (left out of the demand and bias signals): " + "; ".join(
                f"{esc(row['week'])}: {esc(row['detail'].split(':')[0])}" for row in closures.to_dict("records"))
                + "</p>")
    return "".join(out)


def _drivers(regions: dict[str, _Region], storage: StorageResource, links: Links) -> str:
    from mlops_assets.ml.attribution import lasso_coefficients, permutation_attribution  # torch: on use

    out = ["<h2>What drives each segment</h2><p>LASSO: coefficients on the standardized inputs (log demand "
               "per standard deviation; grey bars are negative). Attribution: mean absolute change of a member's "
               "log forecast when the "
               f"input is shuffled across the last {RECENT_WEEKS} weeks' rows; the network's embeddings included.</p>"]
    for name, r in regions.items():
        if r.model is None:
            continue
        files = _read_weeks(storage, "features", name, _weeks(storage, "features", name)[-RECENT_WEEKS:])
        recent = pd.concat(files, ignore_index=True) if files else pd.DataFrame()
        out.append(f'<h3>{esc(name)}</h3><p class="lineage">{_lineage(r, links)}</p><div class="grid">')
        for segment, model in r.model.segments.items():
            out.append('<div class="pair">')
            rows_ = recent[recent["segment"] == segment] if len(recent) else recent
            coef = lasso_coefficients(model)
            top = coef.reindex(coef.abs().sort_values(ascending=False).index).head(10)
            out.append(bar_chart(top.index.tolist(), {"LASSO coefficient": top.tolist()},
                                 f"{segment}: LASSO coefficients", width=440))
            if len(rows_):
                attribution = permutation_attribution(model, rows_).head(12)
                out.append(bar_chart(attribution.index.tolist(), {"LASSO": attribution["lasso"].tolist(),
                                                                  "network": attribution["nn"].tolist()},
                                     f"{segment}: permutation attribution", width=440))
            out.append("</div>")
        out.append("</div>")
    return "".join(out)


def _signal_rows(r: "_Region") -> pd.DataFrame:
    """The region's stored signal rows, both stages, with a 'week' label."""
    parts = [r.drift, r.regional]
    if len(r.accuracy) and "scope" in r.accuracy:
        parts.append(r.accuracy[r.accuracy["scope"] == "signal"])
    parts = [p for p in parts if len(p) and "signal" in p]
    if not parts:
        return pd.DataFrame()
    rows = pd.concat(parts, ignore_index=True)
    rows = rows[rows["signal"] != "status"]
    return rows.assign(week=rows["week_start"].dt.strftime("%Y-%m-%d"))


def _closest(signals: pd.DataFrame) -> dict[tuple[str, str], float]:
    """(signal, week) -> the signed z over limit of the window closest to its limit (a mix part:
    its value over its limit; a signal judged up only, ``monitor.UPWARD``: its largest)."""
    out: dict[tuple[str, str], float] = {}
    for row in signals.to_dict("records"):
        if row.get("limit") is None or not np.isfinite(row["limit"]) or row["limit"] == 0:
            continue
        stat = row["z"] if row.get("z") is not None and np.isfinite(row["z"]) else row.get("value")
        if stat is None or not np.isfinite(stat):
            continue
        ratio = float(stat / row["limit"])
        key = (row["signal"], row["week"])
        if key not in out or (ratio > out[key] if row["signal"] in monitor.UPWARD else abs(ratio) > abs(out[key])):
            out[key] = ratio
    return out



def _support(regions: dict[str, _Region], storage: StorageResource, instance: dg.DagsterInstance, links: Links,
             stale_after_days: int) -> tuple[str, dict]:
    out = ["<h2>Last runs</h2>"]
    records = instance.get_run_records(limit=RUNS_SHOWN)
    runs = []
    for rec in records:
        run = rec.dagster_run
        start, end = rec.start_time, rec.end_time
        partition = run.tags.get("dagster/partition") or (
            f"{run.tags.get('dagster/asset_partition_range_start')} .. "
            f"{run.tags.get('dagster/asset_partition_range_end')}"
            if run.tags.get("dagster/asset_partition_range_start") else "")
        runs.append({"run": run.run_id, "job": run.job_name, "status": run.status.value, "partition": partition,
                     "trigger": run.tags.get("mlops/trigger", run.tags.get("dagster/sensor_name",
                                                                            run.tags.get("dagster/schedule_name", ""))),
                     "started": dt.datetime.fromtimestamp(start, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
                     if start else "", "seconds": round(end - start, 1) if start and end else None,
                     "_class": "bad" if run.status == dg.DagsterRunStatus.FAILURE else ""})
    failures = sum(r["status"] == "FAILURE" for r in runs)
    out.append(f"<p>{failures} of the last {len(runs)} runs failed.</p>")
    out.append(_table(pd.DataFrame(runs), {"run": lambda row: (links.run(row["run"]), row["run"][:8])}))

    out.append(f"<h2>Champions and staleness (stale after {stale_after_days} days)</h2>")
    stale_rows = []
    for name, r in regions.items():
        latest = r.scores[-1][0] if r.scores else None
        age = (pd.Timestamp(latest) - pd.Timestamp(r.champion.as_of_week)).days if r.champion and latest and \
            r.champion.as_of_week else None
        stale_rows.append({"region": name, "champion": f"v{r.champion.version}" if r.champion else "none",
                           "trained up to": r.champion.as_of_week if r.champion else "",
                           "latest scored week": latest or "",
                           "age days": age, "stale": bool(age is not None and age > stale_after_days),
                           "retired": f"{r.retired['at'][:10]}: {r.retired['reason']}" if r.retired else "",
                           "_class": "" if r.retired else
                           "bad" if (r.champion is None or (age or 0) > stale_after_days) else ""})
    stale = sum(r["stale"] for r in stale_rows)
    out.append(_table(pd.DataFrame(stale_rows)))

    out.append("<h2>Data freshness and quarantine per table</h2>")
    fresh, quarantined = [], 0
    for table in TABLES:
        event = instance.get_latest_materialization_event(dg.AssetKey(table))
        meta = event.asset_materialization.metadata if event else {}
        def value(k, meta=meta):
            return meta[k].value if k in meta else None
        q = value("rows_quarantined") or 0
        quarantined += int(q)
        fresh.append({"table": table, "validated": dt.datetime.fromtimestamp(event.timestamp, dt.timezone.utc)
                      .strftime("%Y-%m-%d %H:%M") if event else "never", "rows": value("rows"),
                      "last week": value("last_week") or "", "rows quarantined": q,
                      "quarantine": str(value("quarantine") or ""), "run": event.run_id if event else "",
                      "_class": "bad" if q or not event else ""})
    out.append(_table(pd.DataFrame(fresh), {"run": lambda row: (links.run(row["run"]) if row["run"] else "",
                                                                row["run"][:8]),
                                            "table": lambda row: (links.asset(row["table"]), row["table"])}))

    out.append("<h2>Open alerts</h2>")
    alerts = storage.read_parquet("alerts.parquet") if storage.exists("alerts.parquet") else pd.DataFrame()
    if len(alerts):
        alerts = alerts.assign(_class=np.where(alerts["severity"] == "ERROR", "bad", "warn"))
        shown = [c for c in ("region", "week", "kind", "severity", "value", "threshold", "message", "run_id", "_class")
                 if c in alerts.columns]
        out.append(_table(alerts[shown], {"run_id": lambda row: (links.run(row["run_id"]) if row["run_id"] else "",
                                                                 str(row["run_id"])[:8])}))
    else:
        out.append('<p class="none">none</p>')
    return "".join(out), {"open alerts": len(alerts), "stale champions": stale, "failed runs (last 30)": failures,
                          "rows quarantined": quarantined}


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mlops-assets monitoring</title><link rel="icon" href="data:,">
<style>
body {{ font-family: sans-serif; margin: 0; color: #222; }}
header {{ background: #243447; color: #fff; padding: 10px 20px; }}
header a {{ color: #cde; margin-right: 16px; }}
nav a {{ color: #fff; font-weight: bold; margin-right: 18px; }}
section {{ padding: 4px 20px 24px; border-bottom: 4px solid #eef; }}
.card {{ display: inline-block; vertical-align: top; margin: 6px; padding: 6px; border: 1px solid #ddd;
         max-width: 1140px; }}
.grid {{ display: flex; flex-wrap: wrap; align-items: flex-start; }}
.pair {{ display: flex; flex-direction: column; margin: 4px 10px 10px 0; border-left: 3px solid #eef; }}
table {{ border-collapse: collapse; font-size: 12px; margin: 6px 0; }}
th, td {{ border: 1px solid #ddd; padding: 2px 6px; text-align: left; }}
tr.bad td {{ background: #fde2e1; }} tr.warn td {{ background: #fff4d6; }}
.lineage {{ font-size: 12px; color: #555; }} .none {{ color: #777; font-style: italic; }}
</style></head>
<body>
<header><nav><a href="#business">Business</a><a href="#data-science">Data science</a>
<a href="#support">Support</a></nav>
<p>Built {stamp} by the <code>monitoring_dashboard</code> asset · <a href="{dagster}">Dagster UI</a>
<a href="{mlflow}">MLflow UI</a><br><small>{summary}</small></p></header>
<section id="business"><h1>Business</h1>{business}</section>
<section id="data-science"><h1>Data science</h1>{science}</section>
<section id="support"><h1>Support</h1>{support}</section>
</body></html>
"""
