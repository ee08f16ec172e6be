"""Training, evaluation and the run of one cell of a suite."""
