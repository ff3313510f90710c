"""Model families, one module each: the one place that knows how a family's processor is loaded and how its
image tokens map to images, pixels and layers (`mimic.eval.families.base.Family`). The `hf:` adapter and the
diagnostics read everything family-specific from here."""

from mimic.eval.families.base import (
    ANALYSES,
    FAMILIES,
    Family,
    PatchGrid,
    ProjectorPooling,
    TokenPooling,
    family_for_model_type,
    pool_tokens,
    register_family,
    shrink_placeholders,
)

# the families register themselves on import
from mimic.eval.families.internvl import InternVL
from mimic.eval.families.llava_onevision import LlavaOnevision
from mimic.eval.families.qwen2_vl import Qwen2VL

__all__ = ["ANALYSES", "FAMILIES", "Family", "InternVL", "LlavaOnevision", "Qwen2VL", "PatchGrid", "ProjectorPooling", "TokenPooling", "family_for_model_type", "pool_tokens",
           "register_family", "shrink_placeholders"]
