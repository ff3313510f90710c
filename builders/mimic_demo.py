"""The MIMIC benchmark configs built from the synthetic world: the embedded default, no download.

Same configs, features and generator as `mimic_bench`; only the source differs, so every pipeline
(loading, evaluation, training) can be tried end to end on any machine.
"""

from __future__ import annotations

from mimic.builders.mimic_bench import MimicBench, _configs

__all__ = ["MimicDemo"]


class MimicDemo(MimicBench):
    """MIMIC demo: the benchmark's configs on the rendered synthetic world."""

    BUILDER_CONFIGS = _configs("synthetic")

    def _info(self):
        info = super()._info()
        info.license = "CC BY 4.0 (synthetic images and annotations rendered by mimic-vlm)"
        return info
