"""Reports: tables from the MLflow runs, statistics, rendering, figures, the papers' numbers."""
