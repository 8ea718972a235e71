"""Leaderboards: tables and plots that compare runs of `harness eval`, adaptive against fixed tool use."""
