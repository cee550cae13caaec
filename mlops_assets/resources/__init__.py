from mlops_assets.resources.landing_folder import LandingResource
from mlops_assets.resources.storage import ModelIOManager, ParquetIOManager, StorageResource

__all__ = ["LandingResource", "ModelIOManager", "ParquetIOManager", "StorageResource"]
