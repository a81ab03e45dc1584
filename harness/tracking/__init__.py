"""MLflow tracking (the only place that imports mlflow) and run ownership."""
