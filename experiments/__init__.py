"""experiments/: drive hooks/ on a model and measure with metrics/ (the study, prompt sets, scales)."""
