"""Question templates of the paper (appendix, Fig. 12) and correct plural forms of class names.

A question is one task template plus one connector template, both drawn by the sample's rng and
recorded by id: `P = P_task || P_connector`. The paper's Counting and Listing templates name one
class or category; multi-concept Counting extends them to a list of classes and states the answer
format in its connectors, so the expected output ("dog: 2, cat: 1") is unambiguous.
"""

from __future__ import annotations

# The generator's plurals come from the one inflection table the scorer reads too.
from mimic.inflect import pluralize

__all__ = [
    "counting_answer",
    "TASK_TEMPLATES",
    "CONNECTOR_TEMPLATES",
    "pluralize",
    "join_names",
    "render_question",
    "render_task",
    "template_family",
]

# {plural}: the class in plural ("dogs"), {a_singular}: with an article ("a dog"), {category}: a Listing
# category ("animals"). Counting template 5 needs the singular for grammar ("How many times does a dog appear").
TASK_TEMPLATES: dict[str, tuple[str, ...]] = {
    "common": (
        "Which class is common in these images?",
        "Identify the class that appears in all these images.",
        "Find the common category in these images.",
        "Determine the class that is consistent across all these images.",
        "Which class is repeated in all these images?",
    ),
    "odd_one": (
        "Which class is odd one out in these images?",
        "Identify the class that is different from the others in these images.",
        "Determine the class that doesn't belong in these images.",
        "Find the class that is the outlier among these images.",
        "Which class is unique compared to the others in these images?",
        "Identify the class that is distinct from the rest in these images.",
        "Determine the class that is not like the others in these images.",
    ),
    "listing": (
        "List all the sub-categories belonging to the category {category} in the given images.",
        "Provide a list of all sub-categories under the category {category} in these images.",
        "Enumerate the sub-categories that belong to the category {category} in the given images.",
        "Generate a list of all sub-categories for the category {category} in the images.",
        "Compile a list of all sub-categories under the category {category} in the provided images.",
        "Identify and list all sub-categories belonging to the category {category} in these images.",
    ),
    "counting": (
        "How many {plural} are there in the images?",
        "Count the occurrences of {plural} in these images.",
        "What is the total number of {plural} present in these images?",
        "Provide the count of {plural} visible in these images.",
        "How many times does {a_singular} appear in these images?",
        "How many instances of {plural} can be identified in these images?",
    ),
    # Multi-concept counting: the counting templates over a list of classes.
    "counting_multi": (
        "How many {plural} are there in the images?",
        "Count the occurrences of {plural} in these images.",
        "What is the total number of {plural} present in these images?",
        "Provide the count of {plural} visible in these images.",
        "How many instances of {plural} can be identified in these images?",
    ),
}

CONNECTOR_TEMPLATES: dict[str, tuple[str, ...]] = {
    "common": ("Please provide the correct class name directly.", "Provide the precise class name directly."),
    "odd_one": ("Please provide the correct class name directly.", "Provide the precise class name directly."),
    "listing": ("Please provide the list of category names directly. Separate multiple names with commas.",),
    "counting": (
        "Please state the exact number directly.",
        "Provide the exact number directly.",
        "Please give the correct number without any extra information.",
    ),
    "counting_multi": (
        "Answer with the exact count of each class directly, in the form '{example}'.",
        "Give the exact number for each class directly, as '{example}'.",
        "Please state each count directly, without any extra information, in the form '{example}'.",
    ),
}

def _with_article(name: str) -> str:
    return ("an " if name[:1].lower() in "aeiou" else "a ") + name


def join_names(names: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def template_family(task: str, num_concepts: int = 1, multi_format: bool = False) -> str:
    """The template set a question uses: multi-concept counting has its own (answer format stated)."""
    if task == "counting" and (multi_format or num_concepts > 1):
        return "counting_multi"
    return task


def render_task(family: str, template_id: int, classes=(), category: str | None = None) -> str:
    """The task part of a question (no connector): what lettered-option questions are built on."""
    task_t = TASK_TEMPLATES[family][template_id]
    if family == "counting_multi":
        return task_t.format(plural=join_names([pluralize(c) for c in classes]))
    if family == "counting":
        (cls,) = classes
        return task_t.format(plural=pluralize(cls), a_singular=_with_article(cls))
    if family == "listing":
        return task_t.format(category=category)
    return task_t


def render_question(
    family: str, template_id: int, connector_id: int, classes: list[str] = (), category: str | None = None
) -> str:
    """Fill task template `template_id` and connector `connector_id` of a template family."""
    conn_t = CONNECTOR_TEMPLATES[family][connector_id]
    if family == "counting_multi":
        # A placeholder, not an example number: a concrete number would bias the answers.
        conn_t = conn_t.format(example=", ".join(f"{c}: <number>" for c in classes))
    return f"{render_task(family, template_id, classes, category)} {conn_t}"


def counting_answer(classes: list[str], totals: list[int], multi_format: bool) -> tuple[str, list[str]]:
    """Canonical counting answer: "3" for one class, "dog: 2, cat: 1" in the multi-concept format
    (always used for several classes)."""
    if multi_format or len(classes) > 1:
        return ", ".join(f"{c}: {t}" for c, t in zip(classes, totals, strict=True)), [str(t) for t in totals]
    (t,) = totals
    return str(t), [str(t)]
