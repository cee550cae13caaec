"""Raw sources: observed, not produced. Their data version is a hash of their files'
contents, so a new or changed file marks everything downstream as stale in the UI."""


import dagster as dg

from mlops_assets.contract import validation as contract
from mlops_assets.locations import url
from mlops_assets.resources import LandingResource


def _raw_source(table: contract.Table) -> dg.SourceAsset:
    layout = table.pattern + ("*.csv|*.parquet" if table.is_folder else ".csv|.parquet")

    @dg.observable_source_asset(
        name=f"raw_{table.name}",
        # beside the table validated from it: one group box, each file left of its table, keeps
        # the expanded lineage untangled (a "raw" box of its own was laid out across the tables')
        group_name="landing",
        description=f"Landing files `{layout}` (docs/DATA_CONTRACT.md). Data version: sha256 of the files.",
    )
    def _observe(landing: LandingResource) -> dg.ObserveResult:
        files = landing.fingerprint(table.name)
        sizes = {rel: (landing.root / rel).stat().st_size for rel in files}
        return dg.ObserveResult(
            data_version=dg.DataVersion(landing.data_version(table.name)),
            metadata={
                "files": len(files),
                "bytes": sum(sizes.values()),
                "landing": dg.MetadataValue.path(url(landing.root / table.pattern)),
                "sha256": dg.MetadataValue.json(files),
            },
        )

    return _observe


raw_sources = [_raw_source(t) for t in contract.TABLES.values()]
RAW_KEYS = {t.name: dg.AssetKey(f"raw_{t.name}") for t in contract.TABLES.values()}
