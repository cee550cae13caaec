-- The MLflow tracking and registry store, beside the Dagster instance's database.
CREATE DATABASE mlflow;
