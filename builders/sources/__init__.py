"""Annotation sources: each reads one dataset format into an `AnnotationIndex`."""
