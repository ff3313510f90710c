"""The paper's controlled analyses (`mimic diagnose ...`): vision-token pooling against a pixel-space control
(Fig. 3), inter- vs intra-image attention by layer (Fig. 4/9), stitched composites (Table 6) and the
answer's attention over each image (Fig. 5).

Each analysis has a settings dataclass and a `run_*` function that writes a JSON file and its plot into the
output folder, resumably; `mimic report` picks the JSON files up (`mimic.eval.report`).
"""

from mimic.eval.diagnostics.answer_attention import AnswerAttentionSettings, run_answer_attention
from mimic.eval.diagnostics.attention import (
    AttentionSettings,
    attention_stats,
    run_attention,
    sample_attention,
)
from mimic.eval.diagnostics.pooling import PooledHFModel, PoolingSettings, run_pooling
from mimic.eval.diagnostics.stitch import StitchedHFModel, StitchSettings, run_stitch

__all__ = ["AnswerAttentionSettings", "AttentionSettings", "PooledHFModel", "PoolingSettings", "StitchSettings", "StitchedHFModel",
           "attention_stats", "run_answer_attention", "run_attention", "run_pooling", "run_stitch", "sample_attention"]
