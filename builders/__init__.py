"""Annotation sources, the annotation index, task generators and `datasets` builders (import name `mimic.builders`)."""

from mimic.builders.index import DEFAULT_MIN_BOX_FRAC, AnnotationIndex

__all__ = ["AnnotationIndex", "DEFAULT_MIN_BOX_FRAC"]
