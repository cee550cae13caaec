"""Pure statistics and decisions (no Dagster): reference profiles, drift, realized accuracy, retrain rules, alerts."""
