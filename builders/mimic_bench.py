"""The MIMIC evaluation benchmark as a `datasets` builder: one config per task config, split `test`.

`datasets` 5 no longer runs loading scripts, so this class is used by our code (`mimic build bench`),
which materializes it into a Hub-layout folder that `load_dataset(folder_or_repo, "counting_balanced")`
reads. It can also be used directly:

    builder = MimicBench(config_name="common", annotations="instances_val2017.json", images_dir="val2017")
    builder.download_and_prepare()
    ds = builder.as_dataset(split="test")

Rows carry every control column of docs/tasks.md, with `images` as a list of images whose source
JPEG bytes are embedded unchanged (no decode, no re-encode).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import datasets
from datasets import Features, Image, List, Value

from mimic.builders.configs import CONFIGS
from mimic.builders.generate import GridReport, iter_samples
from mimic.builders.index import DEFAULT_MIN_BOX_FRAC, AnnotationIndex
from mimic.builders.reading import load_index
from mimic.builders.rows import ImageBytes, bad_images_record, drop_bad_images, example_from_sample
from mimic.builders.sample import GENERATOR_VERSION, Sample
from mimic.errors import ConfigError

__all__ = ["MimicBench", "MimicBenchConfig", "BENCH_FEATURES", "CITATION"]

CITATION = """@article{das2025mimic,
  title   = {More Images, More Problems? A Controlled Analysis of VLM Failure Modes},
  author  = {Das, Anurag and Bulat, Adrian and Baldrati, Alberto and Maniadis Metaxas, Ioannis and
             Schiele, Bernt and Tzimiropoulos, Georgios and Martinez, Brais},
  year    = {2025}
}"""

_INT = Value("int32")
BENCH_FEATURES = Features(
    {
        "id": Value("string"),
        "task": Value("string"),
        "config": Value("string"),
        "images": List(Image()),
        "image_ids": List(Value("string")),
        "question": Value("string"),
        "answer": Value("string"),
        "answer_list": List(Value("string")),
        "target_classes": List(Value("string")),
        "category": Value("string"),
        "num_images": _INT,
        "num_query_images": _INT,
        "num_distractors": _INT,
        "num_concepts": _INT,
        "total_instances": _INT,
        "per_image_counts": List(List(_INT)),
        "target_positions": List(_INT),
        "template_id": _INT,
        "connector_id": _INT,
        "seed": Value("int64"),
        "source": Value("string"),
        "source_split": Value("string"),
        "generator_version": Value("string"),
    }
)


@dataclass
class MimicBenchConfig(datasets.BuilderConfig):
    """A benchmark config plus where its annotations are and how much to generate."""

    source: str = "coco"  # coco | openimages | synthetic
    annotations: str | None = None  # annotations file, or an index written by `mimic index`
    images_dir: str | None = None
    scale: str = "small"  # small | paper
    num_samples: int | None = None  # overrides the scale's size
    seed: int = 0
    min_box_frac: float = DEFAULT_MIN_BOX_FRAC
    controls: dict = field(default_factory=dict)  # control overrides (see builders.configs)
    strict: bool = False  # True: a control cell the annotations cannot meet fails the build (paper-faithful)
    include_catch_all: bool = False  # Listing may ask about catch-all categories (COCO indoor / outdoor)
    skip_bad_images: bool = False  # True: images that fail `image_problem` are left out (and counted), not an error

    def __post_init__(self):
        super().__post_init__()
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError on a bad value (`datasets` sets builder kwargs after `__post_init__`)."""
        if self.name not in CONFIGS:
            raise ConfigError(f"unknown benchmark config {self.name!r}; available: {', '.join(CONFIGS)}")
        if self.scale not in ("small", "paper"):
            raise ConfigError(f"scale must be 'small' or 'paper', got {self.scale!r}")


def _configs(source: str) -> list[MimicBenchConfig]:
    return [
        MimicBenchConfig(name=name, version=datasets.Version(GENERATOR_VERSION), description=cfg.description, source=source)
        for name, cfg in CONFIGS.items()
    ]


class MimicBench(datasets.GeneratorBasedBuilder):
    """MIMIC: controlled multi-image VQA (Counting, Listing, Common, Odd-One) from detection annotations."""

    BUILDER_CONFIG_CLASS = MimicBenchConfig
    BUILDER_CONFIGS = _configs("coco")
    DEFAULT_CONFIG_NAME = "counting_balanced"
    DEFAULT_WRITER_BATCH_SIZE = 16  # rows hold up to 35 JPEGs each

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config.validate()

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=CONFIGS[self.config.name].description,
            features=BENCH_FEATURES,
            citation=CITATION,
            license="COCO annotations: CC BY 4.0; images: Flickr terms of their licences",
        )

    # The index and samples are computed once per builder; generation is cheap next to embedding images.
    def load_index(self) -> AnnotationIndex:
        if getattr(self, "_index", None) is None:
            cfg = self.config
            if cfg.annotations is None and cfg.source != "synthetic":
                raise ConfigError(f"config {cfg.name!r}: pass annotations= (the {cfg.source} annotations file)")
            self._index = load_index(cfg.source, cfg.annotations, cfg.images_dir)
            if self._index.images_dir is None:
                raise ConfigError(f"config {cfg.name!r}: pass images_dir= (the folder of the annotated images)")
            self.bad_images = {}
            if cfg.skip_bad_images:
                self._index, self.bad_images = drop_bad_images(self._index)
        return self._index

    def samples(self) -> list[Sample]:
        if getattr(self, "_samples", None) is None:
            cfg = self.config
            self.grid = GridReport(cfg.name)
            self._samples = list(
                iter_samples(
                    self.load_index(), cfg.name, num=cfg.num_samples, scale=cfg.scale, seed=cfg.seed,
                    overrides=cfg.controls, min_box_frac=cfg.min_box_frac, strict=cfg.strict,
                    include_catch_all=cfg.include_catch_all, report=self.grid,
                )
            )
        return self._samples

    def parameters(self) -> dict:
        """What the build depends on besides the annotations: recorded in the folder and its card."""
        c = self.config
        out = {"scale": c.scale, "num_samples": c.num_samples, "seed": c.seed, "min_box_frac": c.min_box_frac,
               "controls": dict(c.controls), "strict": c.strict, "source_split": self.load_index().source_split}
        if CONFIGS[c.name].task == "listing":
            out["include_catch_all"] = c.include_catch_all
        if c.skip_bad_images:
            out.update(bad_images_record(getattr(self, "bad_images", {})))
        grid = getattr(self, "grid", None)
        if grid is not None:
            out["grid"] = grid.to_dict()
        return out

    def example(self, sample: Sample, read: ImageBytes) -> dict:
        return example_from_sample(sample, read)

    def _split_generators(self, dl_manager):
        return [datasets.SplitGenerator(name=datasets.Split.TEST, gen_kwargs={})]

    def _generate_examples(self):
        read = ImageBytes(self.load_index().images_dir)
        for sample in self.samples():
            yield sample.id, self.example(sample, read)
