"""Training conversations: several question/answer turns about one image set, some with lettered options.

The paper's training data (appendix A.2, Fig. 11) follows the LLaVA format with multi-turn
conversations and option-based answers. A generated (and verified) `Sample` gives the image set and its
per-image counts; every extra turn asks something whose answer those verified counts already prove:

- Counting with k classes: one turn per class ("How many cars ...?").
- Listing, Common, Odd-One: the task's question, then sometimes a follow-up counting turn about a class
  whose counts are valid in every image of the sample (a listed class, the common class, the odd class).

A turn becomes a lettered-option question with probability `option_rate`: four options, the correct one
at a random letter, the letter and the option order recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mimic.builders.index import AnnotationIndex
from mimic.builders.sample import Sample
from mimic.builders.templates import (
    CONNECTOR_TEMPLATES,
    TASK_TEMPLATES,
    render_question,
    render_task,
    template_family,
)

__all__ = ["Turn", "conversation_turns", "to_messages", "to_llava", "OPTION_LETTERS", "OPTION_INSTRUCTION"]

OPTION_LETTERS = "ABCD"
OPTION_INSTRUCTION = "Answer with the option's letter from the given choices directly."


@dataclass
class Turn:
    question: str
    answer: str
    kind: str  # task of the turn: counting | listing | common | odd_one
    options: list[str] = field(default_factory=list)  # option texts in letter order; empty when open-ended
    correct_option: str = ""  # letter of the right option; "" when open-ended


def _counting_turn(rng, cls: str, total: int, option_rate: float) -> Turn:
    family = "counting"
    template_id = int(rng.integers(len(TASK_TEMPLATES[family])))
    if rng.random() < option_rate:
        wrong = [v for v in range(max(0, total - 3), total + 4) if v != total]
        picks = rng.choice(len(wrong), size=3, replace=False)
        return _lettered(rng, render_task(family, template_id, [cls]), str(total), [str(wrong[j]) for j in picks], "counting")
    connector_id = int(rng.integers(len(CONNECTOR_TEMPLATES[family])))
    return Turn(render_question(family, template_id, connector_id, [cls]), str(total), "counting")


def _lettered(rng, task_text: str, correct: str, wrong: list[str], kind: str) -> Turn:
    options = [correct, *wrong]
    order = rng.permutation(len(options)).tolist()
    shown = [options[j] for j in order]
    letter = OPTION_LETTERS[order.index(0)]
    lines = "\n".join(f"{OPTION_LETTERS[k]}. {text}" for k, text in enumerate(shown))
    return Turn(f"{task_text}\nOptions:\n{lines}\n{OPTION_INSTRUCTION}", letter, kind, shown, letter)


def _other_classes(index: AnnotationIndex, rng, exclude: set[str], category: str | None, k: int) -> list[str] | None:
    """k distinct classes not in `exclude`, from the same category when it has enough, else from any class."""
    pools = []
    if category and category in index.categories:
        pools.append([c for c in index.categories[category] if c not in exclude])
    pools.append([c for c in index.class_names if c not in exclude])
    for pool in pools:
        if len(pool) >= k:
            return [pool[j] for j in sorted(rng.choice(len(pool), size=k, replace=False).tolist())]
    return None


def _main_turn(index: AnnotationIndex, sample: Sample, rng, option_rate: float) -> Turn:
    if rng.random() >= option_rate:
        return Turn(sample.question, sample.answer, sample.task)
    family = template_family(sample.task, sample.num_concepts)
    task_text = render_task(family, sample.template_id, sample.target_classes, sample.category)
    if sample.task in ("common", "odd_one"):
        wrong = _other_classes(index, rng, set(sample.target_classes), sample.category, 3)
        if wrong is not None:
            return _lettered(rng, task_text, sample.answer, wrong, sample.task)
    elif sample.task == "listing":
        gold = list(sample.target_classes)
        absent = [c for c in index.categories.get(sample.category, ()) if c not in gold]
        variants = set()
        if len(gold) > 1:
            variants.update(", ".join(c for c in gold if c != drop) for drop in gold)
        for extra in absent:
            variants.add(", ".join(sorted([*gold, extra])))
            if len(gold) > 1:
                variants.add(", ".join(sorted([*gold[1:], extra])))
        variants = sorted(variants)
        if len(variants) >= 3:
            picks = rng.choice(len(variants), size=3, replace=False)
            return _lettered(rng, task_text, sample.answer, [variants[j] for j in sorted(picks.tolist())], "listing")
    return Turn(sample.question, sample.answer, sample.task)


def conversation_turns(
    index: AnnotationIndex, sample: Sample, rng: np.random.Generator, *, option_rate: float = 0.3,
    followup_rate: float = 0.5,
) -> list[Turn]:
    """The turns of one training conversation about `sample`'s images (answers from verified counts)."""
    totals = [sum(col) for col in zip(*sample.per_image_counts, strict=True)]
    if sample.task == "counting":
        if sample.num_concepts == 1:
            return [_main_turn(index, sample, rng, option_rate)]
        return [_counting_turn(rng, cls, t, option_rate) for cls, t in zip(sample.target_classes, totals, strict=True)]
    turns = [_main_turn(index, sample, rng, option_rate)]
    if rng.random() < followup_rate:
        j = int(rng.integers(len(sample.target_classes)))
        turns.append(_counting_turn(rng, sample.target_classes[j], totals[j], option_rate))
    return turns


def to_messages(turns: list[Turn], num_images: int) -> list[dict]:
    """TRL's conversational vision format: the first user turn holds one image placeholder per image."""
    messages = []
    for k, turn in enumerate(turns):
        content = [{"type": "image", "text": None}] * num_images if k == 0 else []
        messages.append({"role": "user", "content": [*content, {"type": "text", "text": turn.question}]})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": turn.answer}]})
    return messages


def to_llava(turns: list[Turn], num_images: int) -> list[dict]:
    """LLaVA-NeXT training format: `<image>` tokens before the first question."""
    conversations = []
    for k, turn in enumerate(turns):
        prefix = "<image>\n" * num_images if k == 0 else ""
        conversations.append({"from": "human", "value": prefix + turn.question})
        conversations.append({"from": "gpt", "value": turn.answer})
    return conversations
