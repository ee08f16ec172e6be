"""Files handled safely: atomic writes, locks, MLflow artifacts read leaving no copies."""
