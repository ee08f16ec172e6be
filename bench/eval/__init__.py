"""Evaluation: distances, ranking, CMC/mAP/mINP, streaming, re-ranking, memory budgets."""
