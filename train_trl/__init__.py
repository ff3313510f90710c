"""Fine-tuning with TRL: collator with per-image attention masks, training entry point (import name `mimic.train_trl`)."""
