from mlops_assets.resources.landing import LandingResource
from mlops_assets.resources.storage import ParquetIOManager, StorageResource

__all__ = ["LandingResource", "ParquetIOManager", "StorageResource"]
