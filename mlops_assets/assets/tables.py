"""Validated landing tables: the rows that pass the contract, with the rest quarantined.

One asset per landing table. Each runs the table's pandera schema, stores the
valid rows as Parquet, writes rejected rows (original text, file, row, reasons)
to ``<storage>/quarantine/<table>/<run_id>.parquet`` and reports the outcome as
its ``contract`` check, so the Checks tab lists what was rejected and why.
A master that is unusable as a whole (missing, unreadable, a required column
missing) fails the step: the last good materialization stays in use.
"""


import dagster as dg

from mlops_assets.assets.raw import RAW_KEYS
from mlops_assets.contract import validation as contract
from mlops_assets.errors import ContractError
from mlops_assets.locations import url
from mlops_assets.resources import LandingResource, StorageResource

SHOWN_PROBLEMS = 25


def problems_markdown(problems: list[contract.Problem], limit: int = SHOWN_PROBLEMS) -> str:
    lines = ["| file | row | column | rule | value |", "|---|---|---|---|---|"]
    for p in problems[:limit]:
        lines.append(f"| {p.file} | {p.row} | {p.column} | {p.rule} | {str(p.value).replace('|', '/')} |")
    if len(problems) > limit:
        lines.append(f"\n{len(problems) - limit} more; run `mlops-assets validate` for all of them.")
    return "\n".join(lines)


def _unusable(result: contract.TableResult, whole_table: bool) -> list[contract.Problem]:
    """Problems that leave no good state to build from."""
    if whole_table:
        return result.file_problems
    # a folder table survives a bad file, but not the absence of any readable file
    return [p for p in result.file_problems if p.row == 0 and "required" in p.rule] if result.valid.empty else []


def _publish(context: dg.AssetExecutionContext, storage: StorageResource, result: contract.TableResult):
    name = result.name
    quarantine_path = None
    if len(result.quarantine):
        quarantine_path = storage.write_quarantine(name, context.run.run_id, result.quarantine)
        context.log.warning(f"{name}: {len(result.quarantine)} rows quarantined to {quarantine_path}")
    fatal = _unusable(result, whole_table=name in contract.MASTERS)
    if fatal:
        lines = "\n".join(str(p) for p in fatal)
        raise ContractError(f"{name}: the delivery is unusable, keeping the last good {name}:\n{lines}", fatal)
    metadata = {
        "rows": len(result.valid),
        "rows_quarantined": len(result.quarantine),
        "files": len(result.files),
        "problems": len(result.problems),
    }
    if quarantine_path is not None:
        metadata["quarantine"] = dg.MetadataValue.path(url(quarantine_path))
    if "week_start" in result.valid and len(result.valid):  # the sensors read the latest delivered week here
        metadata["first_week"] = result.valid["week_start"].min().strftime("%Y-%m-%d")
        metadata["last_week"] = result.valid["week_start"].max().strftime("%Y-%m-%d")
    yield dg.Output(result.valid, metadata=metadata)
    yield dg.AssetCheckResult(
        check_name="contract",
        passed=not result.problems,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "problems": len(result.problems),
            "rows_quarantined": len(result.quarantine),
            "failures": dg.MetadataValue.md(problems_markdown(result.problems) if result.problems else "none"),
        },
    )


def _table_asset(name: str, upstream: tuple[str, ...] = ()):
    spec = dg.AssetCheckSpec("contract", asset=name,
                             description="Every row passes the data contract; failures are quarantined.")

    @dg.asset(
        name=name,
        group_name="landing",
        deps=[RAW_KEYS[name], *upstream],
        check_specs=[spec],
        io_manager_key="parquet_io_manager",
        description=f"Valid rows of the landing table `{name}` (docs/DATA_CONTRACT.md); bad rows quarantined.",
        kinds={"pandas", "parquet"},
    )
    def _table(context: dg.AssetExecutionContext, landing: LandingResource, storage: StorageResource):
        storage.claim_landing(landing.root)  # never two landing folders' data in one storage
        results = landing.checked()
        for master in upstream:
            if _unusable(results[master], whole_table=True):
                raise ContractError(f"{name}: not rebuilt because {master} is unusable; "
                                    f"fix {master} first (mlops-assets validate)")
        yield from _publish(context, storage, results[name])

    return _table


stores = _table_asset("stores")
products = _table_asset("products")
demographics = _table_asset("demographics", ("stores",))
events = _table_asset("events", ("stores", "products"))
shipments = _table_asset("shipments", ("stores", "products"))
returns = _table_asset("returns", ("stores", "products"))
weather = _table_asset("weather")

table_assets = [stores, products, demographics, events, shipments, returns, weather]

