"""Dataset cards for Hub-layout folders, rendered from `dataset_cards/` templates with huggingface_hub."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from huggingface_hub import DatasetCard, DatasetCardData

from mimic.atomic import atomic_path
from mimic.builders.configs import CONFIGS
from mimic.builders.hub_folder import read_build_records
from mimic.builders.stats import format_table1

__all__ = ["render_dataset_card", "write_dataset_card", "size_category", "LICENSES"]

LICENSES = {
    "coco": (
        "other",
        "COCO annotations are licensed CC BY 4.0 (cocodataset.org/#termsofuse). The images come from Flickr and "
        "keep the terms of their own licences (listed per image in the COCO annotations); use them accordingly.",
    ),
    "openimages": (
        "cc-by-4.0",
        "Open Images V7 annotations are licensed CC BY 4.0 by Google; the images are listed as having a CC BY 2.0 "
        "licence (check each image's own terms).",
    ),
    "synthetic": ("cc-by-4.0", "Synthetic images and annotations rendered by mimic-vlm; CC BY 4.0."),
}


def size_category(n: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return label
    return "1M<n<10M"


def render_dataset_card(
    out_dir: str | os.PathLike,
    *,
    pretty_name: str,
    summary: str,
    repo_id: str = "mimic/bench",
    build_command: str = "",
    template: str = "bench.md",
    all_config: bool = False,
    listing_categories: dict | None = None,
    left_out_categories: dict | None = None,
) -> DatasetCard:
    """The card for every config materialized in `out_dir` (from the build records in `.mimic/`).

    `listing_categories` (category -> members) and `left_out_categories` (category -> reason) describe
    what Listing asked about. With `all_config`, the card also declares a config `all` reading every other config's files, and
    makes it the default (what `load_dataset(folder, split="train")` reads).
    """
    records = read_build_records(out_dir)
    if not records:
        raise FileNotFoundError(f"{out_dir}: no materialized config to describe")
    # Benchmark configs in their usual order; training folders use the plain task names.
    order = [*CONFIGS][:3] + ["counting", *[*CONFIGS][3:]]
    names = [n for n in order if n in records] + sorted(n for n in records if n not in order)
    sources = sorted({r["source"] for r in records.values()})
    license_id = LICENSES[sources[0]][0] if len(sources) == 1 else "other"
    card_data = DatasetCardData(
        language=["en"],
        license=license_id,
        pretty_name=pretty_name,
        task_categories=["visual-question-answering", "image-text-to-text"],
        size_categories=[size_category(sum(r["num_rows"] for r in records.values()))],
        tags=["multi-image", "counting", "vision-language", "benchmark", "mimic"],
        configs=[
            {
                "config_name": n,
                "data_files": [{"split": records[n]["split"], "path": f"{n}/{records[n]['split']}-*"}],
                **({"default": True} if k == 0 and not all_config else {}),
            }
            for k, n in enumerate(names)
        ]
        + (
            [{"config_name": "all", "default": True, "data_files": [{"split": records[names[0]]["split"],
                                                    "path": [f"{n}/{records[n]['split']}-*" for n in names]}]}]
            if all_config else []
        ),
    )
    table = format_table1({n: records[n]["table1"] for n in names})
    configs = [
        {
            "name": n,
            "task": CONFIGS[n].task if n in CONFIGS else n,
            "description": records[n].get("description") or (CONFIGS[n].description if n in CONFIGS else ""),
            "rows": f"{records[n]['num_rows']:,}",
            "parameters": json.dumps(records[n]["parameters"], sort_keys=True),
        }
        for n in names
    ]
    from mimic.builders.mimic_bench import CITATION

    skipped = [
        f"`{n}`: {cell['controls']}" + (f" after {cell['produced']} sample(s)" if cell["produced"] else "")
        + f": {cell['reason']}"
        for n in names
        for grid in _grids(records[n]["parameters"])
        for cell in grid.get("skipped_cells", [])
    ]
    shortfall = [f"`{n}`: {g['produced']} of {g['requested']} rows" for n in names
                 for g in _grids(records[n]["parameters"]) if g.get("shortfall")]
    splits = sorted({r["parameters"].get("source_split") or "" for r in records.values()} - {""})

    template_str = resources.files("mimic.dataset_cards").joinpath(template).read_text()
    return DatasetCard.from_template(
        card_data,
        template_str=template_str,
        pretty_name=pretty_name,
        summary=summary,
        configs=configs,
        table1=table,
        repo_id=repo_id,
        default_config=names[0],
        build_command=build_command,
        min_box_frac=sorted({r["parameters"]["min_box_frac"] for r in records.values()})[0],
        license_text="\n\n".join(LICENSES[s][1] for s in sources),
        split=records[names[0]]["split"],
        citation=CITATION,
        skipped_cells=skipped,
        shortfall=shortfall,
        source_split=", ".join(splits),
        listing_categories=listing_categories,
        left_out_categories=left_out_categories,
    )


def _grids(parameters: dict) -> list[dict]:
    """The grid reports of a build record: one for a benchmark config, one per task for a training config."""
    grid = parameters.get("grid") or {}
    return [grid] if "requested" in grid else list(grid.values())


def write_dataset_card(out_dir: str | os.PathLike, **kwargs) -> Path:
    card = render_dataset_card(out_dir, **kwargs)
    path = Path(out_dir) / "README.md"
    with atomic_path(path) as tmp:
        card.save(tmp)
    return path
