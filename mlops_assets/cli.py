"""The ``mlops-assets`` command: what a person does outside the Dagster UI."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
import warnings
from pathlib import Path

from mlops_assets import config
from mlops_assets.locations import location


def _sample(args) -> int:
    from mlops_assets.sample import SampleSpec, generate, parse_drift, parse_regions

    spec = SampleSpec(out_dir=Path(args.out_dir), regions=parse_regions(args.regions),
                      stores_per_region=args.stores_per_region, products=args.products, weeks=args.weeks,
                      end_week=args.end_week, seed=args.seed, drift=parse_drift(args.drift),
                      realism=not args.no_realism)
    counts = generate(spec)
    print(f"wrote {args.out_dir}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def _validate(args) -> int:
    from mlops_assets.contract.validation import check_landing

    landing = location(args.landing_dir, "landing_dir")
    if not landing.is_dir():
        print(f"{landing}: not a folder", file=sys.stderr)
        return 2
    results = check_landing(landing)
    count = 0
    for result in results.values():
        for problem in result.problems:
            print(problem)
            count += 1
    rows = sum(r.rows_read for r in results.values())
    bad = sum(len(r.quarantine) for r in results.values())
    verdict = "valid" if count == 0 else f"{count} problems, {bad} rows rejected"
    print(f"{landing}: {rows} rows in {sum(len(r.files) for r in results.values())} files: {verdict}",
          file=sys.stderr)
    return 0 if count == 0 else 1


def _run(args) -> int:
    from mlops_assets.app.execution import RunFailed
    from mlops_assets.app.pipeline import run_pipeline
    from mlops_assets.app.report import format_summary, report_json

    regions = [r.strip() for r in args.regions.split(",")] if args.regions else None
    landing = args.landing or None  # a folder or an Azure URL (mlops_assets.locations)
    try:
        if args.new_weeks:
            from mlops_assets.app.pipeline import run_new_weeks

            summary = run_new_weeks(landing, workers=args.workers)
            if summary.first_week > summary.last_week:
                print(f"no week delivered after {summary.last_week}: tables validated, nothing else to do")
            else:
                print(f"weeks {summary.first_week} .. {summary.last_week} conditioned, featurized and monitored, "
                      f"the week after forecast: {len(summary.run_ids)} Dagster runs, "
                      f"{sum(t for _, t in summary.timings):.1f} s")
            return 0
        summary = run_pipeline(landing, regions, holdout_weeks=args.holdout_weeks, workers=args.workers)
    except RunFailed as exc:
        print(f"mlops-assets run: {exc}", file=sys.stderr)
        return 1
    print(format_summary(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(report_json(summary), indent=2, allow_nan=False) + "\n")
        print(f"metrics written to {args.json}")
    return 0


def _backfill(args) -> int:
    from mlops_assets.app.backfill import backfill, format_backfill
    from mlops_assets.app.execution import RunFailed

    try:
        results = backfill([r.strip() for r in args.regions.split(",")], [a.strip() for a in args.assets.split(",")],
                           args.first, args.last)
    except RunFailed as exc:
        print(f"mlops-assets backfill: {exc}", file=sys.stderr)
        return 2
    print(format_backfill(results))
    return 0 if all(r.success for r in results) else 1


def _dashboard(args) -> int:
    """Serve the persona dashboards (the ``monitoring_dashboard`` asset's page) on 127.0.0.1."""
    import http.server

    from mlops_assets.app.backfill import refresh_dashboard
    from mlops_assets.app.execution import RunFailed
    from mlops_assets.dashboard.build import PAGE

    settings = _settings()
    page = settings.storage_root / PAGE
    if args.refresh or not page.exists():
        try:
            refresh_dashboard()
        except RunFailed as exc:
            print(f"mlops-assets dashboard: {exc}", file=sys.stderr)
            return 1
    class PageHandler(http.server.BaseHTTPRequestHandler):
        """The one page, read from storage on each request (a local folder or Azure)."""

        def do_GET(self):  # noqa: N802 - the http.server API
            if self.path.split("?")[0] not in ("/", "/index.html"):
                self.send_error(404)
                return
            body = page.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer((args.host, args.port), PageHandler)
    print(f"serving {page} at http://{args.host}:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _tool(name: str) -> str:
    """A console script of this environment (beside the running Python), else from PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def _ui(args) -> int:
    from mlops_assets.app.execution import prepare_environment

    prepare_environment(args.landing or None)
    cmd = [_tool("dagster"), "dev", "-w", str(config.REPO_ROOT / "workspace.yaml"), "-h", args.host,
           "-p", str(args.port)]
    print(f"DAGSTER_HOME={os.environ['DAGSTER_HOME']} {' '.join(cmd)}", file=sys.stderr)
    os.execvp(cmd[0], cmd)
    return 0


def _settings(command: str = ""):
    """The settings; for a ``command`` that reads the MLflow store, first one short try to reach
    it: a store that does not answer ends the command with one line, the masked URI and why."""
    from mlops_assets.app.execution import prepare_environment
    from mlops_assets.registry.tracking import store_problem

    settings = prepare_environment()
    problem = store_problem(settings.mlflow_tracking_uri) if command else None
    if problem:
        print(f"mlops-assets {command}: cannot reach the MLflow store {config.redacted(settings.mlflow_tracking_uri)}"
              f" ({problem})", file=sys.stderr)
        raise SystemExit(1)
    return settings


def _status(args) -> int:
    from mlops_assets.releases import format_status, open_alerts, status

    settings = _settings("status")
    rows, alerts = status(settings), open_alerts(settings)
    print(json.dumps({"regions": rows, "alerts": alerts}, indent=2) if args.json
          else format_status(rows, settings, alerts))
    return 0


def _promote(args) -> int:
    from mlops_assets.registry.tracking import RegistryError
    from mlops_assets.releases import registry_for, who

    if args.force and not args.reason:
        print("mlops-assets promote: --force needs --reason", file=sys.stderr)
        return 2
    try:
        release = registry_for(_settings("promote")).promote(args.region, args.version, by=who(),
                                                    reason=args.reason or "promoted by hand", force=args.force)
    except RegistryError as exc:
        print(f"mlops-assets promote: {exc}", file=sys.stderr)
        return 1
    was = release.tags["previous_champion"] or "none"
    print(f"{args.region}: champion is now version {release.version} (was {was})")
    return 0


def _rollback(args) -> int:
    from mlops_assets.registry.tracking import RegistryError
    from mlops_assets.releases import registry_for, who

    try:
        release = registry_for(_settings("rollback")).rollback(args.region, by=who(), reason=args.reason)
    except RegistryError as exc:
        print(f"mlops-assets rollback: {exc}", file=sys.stderr)
        return 1
    print(f"{args.region}: champion rolled back to version {release.version} "
          f"(from {release.tags['restored_from']}): {args.reason}")
    return 0


def _retire(args) -> int:
    from mlops_assets.app.execution import RunFailed
    from mlops_assets.app.lifecycle import onboard_region, retire_region
    from mlops_assets.registry.tracking import RegistryError
    from mlops_assets.releases import who

    _settings(args.command)
    try:
        if args.command == "onboard":
            onboard_region(args.region, args.reason, who())
            print(f"{args.region}: onboarded again ({args.reason}); `mlops-assets run --regions {args.region}` "
                  "or its next delivery trains it")
            return 0
        entry = retire_region(args.region, args.reason, who())
    except (RunFailed, RegistryError) as exc:
        print(f"mlops-assets {args.command}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.region}: retired ({args.reason}); champion {entry['champion'] or 'none'} no longer serves, "
          "its versions, runs and stored weeks stay readable; sensors, schedules and backfills leave it alone")
    return 0


def _lineage(args) -> int:
    from mlops_assets.registry.tracking import RegistryError
    from mlops_assets.releases import format_trace, rebuild_training_frame, trace, trace_json

    settings = _settings("lineage")
    try:
        chain = trace(settings, args.region, args.week)
    except (RegistryError, ValueError) as exc:
        print(f"mlops-assets lineage: {exc}", file=sys.stderr)
        return 1
    print(trace_json(chain) if args.json else format_trace(chain))
    if args.rebuild:
        frame = rebuild_training_frame(settings, chain)
        frame.to_parquet(args.rebuild, index=False)
        print(f"training frame ({len(frame)} rows, digest {chain['training_data']['digest']}) "
              f"written to {args.rebuild}",
              file=sys.stderr)
    return 0


def _mlflow_ui(args) -> int:
    settings = _settings()
    cmd = [_tool("mlflow"), "server", "--host", args.host, "--port", str(args.port), "--workers", "1"]
    if settings.mlflow_artifact_root:
        root = settings.mlflow_artifact_root
        cmd += ["--default-artifact-root", root if "://" in root else Path(root).as_uri()]
    # the store's URI may carry a password: it goes to the server through its environment
    # (MLflow reads MLFLOW_BACKEND_STORE_URI), never on the command line that `ps` shows
    os.environ["MLFLOW_BACKEND_STORE_URI"] = settings.mlflow_tracking_uri
    print(f"MLFLOW_BACKEND_STORE_URI={config.redacted(settings.mlflow_tracking_uri)} {' '.join(cmd)}", file=sys.stderr)
    os.execvp(cmd[0], cmd)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample", help="generate a landing folder with realistic weekly demand")
    p.add_argument("out_dir")
    p.add_argument("--regions", default="north,south,west", help="names a,b,c or a count (default: %(default)s)")
    p.add_argument("--stores-per-region", type=int, default=8)
    p.add_argument("--products", type=int, default=24)
    p.add_argument("--weeks", type=int, default=104)
    p.add_argument("--end-week", default="2026-11-09", help="last observed week, a Monday (default: %(default)s)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--drift", action="append", default=[], metavar="REGION:WEEK",
                   help="shift REGION's demand and weather from WEEK on; repeatable")
    p.add_argument("--no-realism", action="store_true",
                   help="only the learnable effects: no level shifts, late openings, long tail, unannounced "
                        "promotions, outliers, heterogeneous noise or non-linear effects")
    p.set_defaults(func=_sample)

    p = sub.add_parser("validate", help="check a landing folder against the data contract")
    p.add_argument("landing_dir")
    p.set_defaults(func=_validate)

    p = sub.add_parser("run", help="materialize the graph for all regions in-process")
    p.add_argument("--landing", help=f"landing folder (default: $MLOPS_LANDING_DIR or {config.SAMPLE_LANDING_DIR})")
    p.add_argument("--regions", help="only these regions, comma-separated")
    p.add_argument("--holdout-weeks", type=int, default=13, help="weeks held out for evaluation (default 13)")
    p.add_argument("--json", help="write the per-region, per-segment metrics to this file")
    p.add_argument("--workers", type=int, help="regions at a time, each in its own process (default: 2 on a "
                                               "2-core machine for large regions, else 1; or $MLOPS_RUN_WORKERS)")
    p.add_argument("--new-weeks", action="store_true",
                   help="only what landed since the last run, as the sensors would: validate, condition, featurize "
                        "and monitor the new weeks, forecast the week after (needs an earlier full run)")
    p.set_defaults(func=_run)

    p = sub.add_parser("backfill", help="rebuild a region's weeks in one run, as a UI backfill of all its weeks does; "
                                        "weeks whose data has not landed are skipped and named")
    p.add_argument("regions", help="one region, or several comma-separated (one run each)")
    p.add_argument("--assets", default="net_demand,weekly_weather,weekly_events,features",
                   help="comma-separated, from net_demand, weekly_weather, weekly_events, features, drift_metrics, "
                        "forecast_accuracy (default: %(default)s)")
    p.add_argument("--first", help="first week (a Monday; default: the first week partition)")
    p.add_argument("--last", help="last week (default: the last week partition, the week in progress)")
    p.set_defaults(func=_backfill)

    p = sub.add_parser("dashboard", help="serve the business, data-science and support dashboards "
                                         "(the monitoring_dashboard asset's page)")
    served = urllib.parse.urlsplit(config.dashboard_url())
    p.add_argument("--host", default=served.hostname or "127.0.0.1", help="default: from $MLOPS_DASHBOARD_URL, "
                                                                          "else 127.0.0.1")
    p.add_argument("--port", type=int, default=served.port or 8765,
                   help="default: from $MLOPS_DASHBOARD_URL, else 8765")
    p.add_argument("--refresh", action="store_true", help="materialize monitoring_dashboard first")
    p.set_defaults(func=_dashboard)

    p = sub.add_parser("ui", help="start the Dagster UI (dagster dev) on this project's instance")
    p.add_argument("--landing")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=_ui)

    p = sub.add_parser("status", help="every region's champion, its age, the last gate verdict, staleness")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_status)

    p = sub.add_parser("promote", help="make a registered version the region's champion (by hand)")
    p.add_argument("region")
    p.add_argument("version")
    p.add_argument("--reason", default="", help="why (recorded on the version)")
    p.add_argument("--force", action="store_true", help="promote a version that failed its gates (needs --reason)")
    p.set_defaults(func=_promote)

    p = sub.add_parser("rollback", help="give the champion back to the version it replaced")
    p.add_argument("region")
    p.add_argument("--reason", required=True, help="why (recorded on both versions)")
    p.set_defaults(func=_rollback)

    p = sub.add_parser("retire", help="end a region: its champion alias and partition go, its history stays; "
                                      "refused while a run of the region is in flight")
    p.add_argument("region")
    p.add_argument("--reason", required=True, help="why (recorded on the registered model and its versions)")
    p.set_defaults(func=_retire)

    p = sub.add_parser("onboard", help="take a retired region back (its data lands again)")
    p.add_argument("region")
    p.add_argument("--reason", required=True, help="why (recorded in the champion log)")
    p.set_defaults(func=_retire)

    p = sub.add_parser("lineage", help="trace a week's forecasts to the model, run and training data")
    p.add_argument("region")
    p.add_argument("week", help="the scored week (a Monday), e.g. 2026-11-16")
    p.add_argument("--json", action="store_true")
    p.add_argument("--rebuild", metavar="FILE", help="write the exact training frame (digest checked) to FILE")
    p.set_defaults(func=_lineage)

    p = sub.add_parser("mlflow-ui", help="the MLflow UI on the local tracking store")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(func=_mlflow_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Dagster warns, with the source line, on every beta or preview API the definitions use:
    # news for this project's developers, noise for a person running a command
    warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview)")
    # MLflow logs at INFO as it creates its tables and checks each input example: the summary says
    # what was registered; its warnings and errors still show (MLFLOW_LOGGING_LEVEL overrides)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    args = build_parser().parse_args(argv)
    from mlops_assets.errors import LandingMissing

    try:
        return args.func(args)
    except LandingMissing as exc:  # a mistyped folder is the person's to fix: one line, not a traceback
        print(f"mlops-assets {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
