"""Jinja templates of the dataset and model cards, rendered with huggingface_hub's card classes."""
