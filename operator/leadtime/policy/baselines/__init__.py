"""Baselines re-implemented from the autoscalers users run today, for side-by-side comparison."""
