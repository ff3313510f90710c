"""Annotation sources, the annotation index, task generators and `datasets` builders (import name `mimic.builders`)."""

from mimic.builders.index import DEFAULT_MIN_BOX_FRAC, AnnotationIndex
from mimic.builders.reading import load_index

__all__ = ["AnnotationIndex", "DEFAULT_MIN_BOX_FRAC", "load_index"]
