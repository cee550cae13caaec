"""Pure modelling code: DataFrames in, DataFrames or estimators out. Knows nothing of Dagster."""
