"""Evaluation: tasks, methods, the rollout engine, run directories, metrics and reports."""
