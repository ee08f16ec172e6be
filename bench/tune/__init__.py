"""Tuning: an Optuna study over a method's search space, its admission, workers and runs."""
