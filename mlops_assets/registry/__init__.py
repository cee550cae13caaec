"""MLflow: tracking, registered versions and the champion alias, gates, releases, lineage."""
