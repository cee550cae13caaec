"""mlops-assets: weekly retail demand forecasting as one Dagster asset graph."""

__version__ = "0.1.0"
