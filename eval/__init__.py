"""Model adapters, answer scoring, evaluation runner and reports (import name `mimic.eval`)."""
