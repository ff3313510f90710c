"""Integrations with the tools users evaluate and look at data with: lmms-eval, VLMEvalKit, FiftyOne."""
