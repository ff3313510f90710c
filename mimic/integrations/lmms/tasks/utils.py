# The hooks live in the installed package (mimic.integrations.lmms.hooks) so that lmms-eval and `mimic eval`
# run the same loader, prompt and scorer code; lmms-eval loads this file by path for the `!function` tags.
from mimic.integrations.lmms.hooks import (  # noqa: F401
    aggregate_accuracy,
    aggregate_class_accuracy,
    aggregate_mae,
    aggregate_mean_f1,
    aggregate_micro_f1,
    aggregate_parse_failure_rate,
    doc_to_target,
    doc_to_text,
    doc_to_visual,
    process_docs,
    process_results,
)
