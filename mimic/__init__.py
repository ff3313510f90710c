"""mimic-vlm: controlled multi-image evaluation and training of vision-language models.

The import root holds the CLI and small shared types; the subpackages are
`mimic.builders` (annotation sources, index, task generators, dataset builders),
`mimic.eval` (model adapters, scoring, reports) and `mimic.train_trl` (collator,
per-image attention masks, training entry point).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
