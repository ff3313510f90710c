"""The MIMIC training set (paper, section 4 and appendix A.2) as a `datasets` builder, in TRL's format.

Samples are composed from Open Images V7 boxes with the benchmark's generators and verifier (up to 10
images, class-balanced, the 5% rule, `IsGroupOf` as crowd, depictions never counted), then turned into
conversations: `images` (list of images) and `messages` (user turns with one image placeholder per
image, assistant turns with the answers), several turns about the same image set in some samples,
lettered options in some, plus every control column of the benchmark. One config per task and `all`.

COCO is the evaluation source: the builder refuses it unless `allow_coco=True`, and
`mimic check-overlap` reports any image shared between a training and a benchmark folder.

Memory: the paper's set is 200,000 rows of up to 10 images. The image bytes are streamed by `materialize`
(16 rows at a time), and the composed samples and conversations (about 3.5 kB each as Python objects) are
spooled to an unnamed temporary file as they are generated (`SpooledItems`: one JSON line per row, 16 bytes
of offsets per row in memory), so memory does not grow with the number of rows beyond the generator's
duplicate check. Forked shard writers (`materialize(num_proc=N)`) read the same file.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import orjson
from datasets import Features, Value

from mimic.builders.configs import train_configs
from mimic.builders.conversations import Turn, conversation_turns, to_llava, to_messages
from mimic.builders.generate import GridReport, iter_samples
from mimic.builders.index import DEFAULT_MIN_BOX_FRAC, AnnotationIndex
from mimic.builders.mimic_bench import BENCH_FEATURES, CITATION
from mimic.builders.reading import load_index
from mimic.builders.rows import ImageBytes, bad_images_record, drop_bad_images, example_from_sample
from mimic.builders.sample import GENERATOR_VERSION, Sample
from mimic.errors import ConfigError

__all__ = ["MimicTrain", "MimicTrainConfig", "SpooledItems", "TrainItem", "TRAIN_FEATURES", "TRAIN_TASKS"]

TRAIN_TASKS = ("counting", "listing", "common", "odd_one")

TRAIN_FEATURES = Features(
    {
        **BENCH_FEATURES,
        "messages": datasets.List(
            {"role": Value("string"), "content": datasets.List({"type": Value("string"), "text": Value("string")})}
        ),
        "num_turns": Value("int32"),
        "turn_tasks": datasets.List(Value("string")),
        "options": datasets.List(datasets.List(Value("string"))),  # per turn, in letter order; [] if open
        "correct_options": datasets.List(Value("string")),  # per turn: the right letter, "" if open
    }
)


@dataclass
class TrainItem:
    """One training row before its images are read: the verified sample and its conversation."""

    sample: Sample
    turns: list[Turn]

    @property
    def id(self) -> str:
        return self.sample.id

    @property
    def file_names(self) -> list[str]:
        return self.sample.file_names


class SpooledItems(Sequence):
    """`TrainItem`s kept in an unnamed temporary file, one JSON line each; only their offsets stay in memory.

    Append while generating, then `seal()`; after that it is a read-only sequence (`len`, `items[k]`,
    `items[lo:hi]`, iteration), read with `os.pread`, so processes forked after sealing read it too.
    The file is gone when the object is, or the process ends.
    """

    _CHUNK = 512

    def __init__(self, dir: str | None = None):
        self._file = tempfile.TemporaryFile(dir=dir)  # noqa: SIM115 (lives as long as the object)
        self._offsets = array("q", [0])
        self._sealed = False

    def append(self, item: TrainItem) -> None:
        if self._sealed:
            raise RuntimeError("SpooledItems: sealed, no more appends")
        data = orjson.dumps({"sample": item.sample, "turns": item.turns}) + b"\n"
        self._file.write(data)
        self._offsets.append(self._offsets[-1] + len(data))

    def seal(self) -> SpooledItems:
        self._file.flush()
        self._sealed = True
        return self

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def _read(self, lo: int, hi: int) -> list[TrainItem]:
        if not self._sealed:
            raise RuntimeError("SpooledItems: seal() before reading")
        if hi <= lo:
            return []
        start = self._offsets[lo]
        data = os.pread(self._file.fileno(), self._offsets[hi] - start, start)
        return [_item_from_json(line) for line in data.splitlines()]

    def __getitem__(self, k):
        if isinstance(k, slice):
            lo, hi, step = k.indices(len(self))
            if step != 1:
                raise ValueError("SpooledItems: slices with a step are not supported")
            return self._read(lo, hi)
        n = len(self)
        if not -n <= k < n:
            raise IndexError(k)
        k %= n
        return self._read(k, k + 1)[0]

    def __iter__(self) -> Iterator[TrainItem]:
        for lo in range(0, len(self), self._CHUNK):
            yield from self._read(lo, min(lo + self._CHUNK, len(self)))


def _item_from_json(line: bytes) -> TrainItem:
    d = orjson.loads(line)
    return TrainItem(Sample(**d["sample"]), [Turn(**t) for t in d["turns"]])


@dataclass
class MimicTrainConfig(datasets.BuilderConfig):
    """A training task (or `all`) plus the annotations and the conversation settings."""

    source: str = "openimages"
    annotations: str | None = None  # Open Images box CSV, or an index written by `mimic index`
    oi_classes: str | None = None
    oi_hierarchy: str | None = None
    images_dir: str | None = None
    per_task: int | None = None  # samples per task; default: the small scale (paper: 50,000)
    scale: str = "small"
    max_images: int = 10
    seed: int = 0
    min_box_frac: float = DEFAULT_MIN_BOX_FRAC
    option_rate: float = 0.3
    followup_rate: float = 0.5
    allow_coco: bool = False
    strict: bool = False  # True: a control cell the annotations cannot meet fails the build
    include_catch_all: bool = False  # Listing may ask about the broad or mixed hierarchy nodes
    skip_bad_images: bool = False  # True: images that fail `image_problem` are left out (and counted), not an error

    def __post_init__(self):
        super().__post_init__()
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError on a bad value (`datasets` sets builder kwargs after `__post_init__`)."""
        if self.name not in (*TRAIN_TASKS, "all"):
            raise ConfigError(f"unknown training config {self.name!r}; available: {', '.join((*TRAIN_TASKS, 'all'))}")
        if self.source == "coco" and not self.allow_coco:
            raise ConfigError(
                "COCO is the evaluation benchmark's source: training on it would leak evaluation images. "
                "Use Open Images (--source openimages), or pass allow_coco=True for a COCO split you know is disjoint."
            )
        for name in ("option_rate", "followup_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        train_configs(self.max_images)  # validates max_images


class MimicTrain(datasets.GeneratorBasedBuilder):
    """MIMIC training set: multi-image, multi-turn conversations from Open Images V7 annotations."""

    BUILDER_CONFIG_CLASS = MimicTrainConfig
    BUILDER_CONFIGS = [
        MimicTrainConfig(name=n, version=datasets.Version(GENERATOR_VERSION), description=d)
        for n, d in [
            ("counting", "Count one to three classes over up to 10 images."),
            ("listing", "List the classes of a category visible in the images."),
            ("common", "Name the class present in all images."),
            ("odd_one", "Name the class present in only one image."),
            ("all", "All four tasks."),
        ]
    ]
    DEFAULT_CONFIG_NAME = "all"
    DEFAULT_WRITER_BATCH_SIZE = 16

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config.validate()

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=self.config.description, features=TRAIN_FEATURES, citation=CITATION,
            license="Open Images V7 annotations: CC BY 4.0",
        )

    def load_index(self) -> AnnotationIndex:
        """The index, restricted to images that are on disk (the rest are skipped and counted)."""
        if getattr(self, "_index", None) is None:
            cfg = self.config
            if cfg.annotations is None and cfg.source != "synthetic":
                raise ConfigError(f"training config {cfg.name!r}: pass annotations= (the {cfg.source} box file)")
            index = load_index(cfg.source, cfg.annotations, cfg.images_dir, cfg.oi_classes, cfg.oi_hierarchy)
            self._index, self.missing_image_ids = drop_missing_images(index)
            self.bad_images = {}
            if cfg.skip_bad_images:
                self._index, self.bad_images = drop_bad_images(self._index)
        return self._index

    def tasks(self) -> tuple[str, ...]:
        return TRAIN_TASKS if self.config.name == "all" else (self.config.name,)

    def samples(self) -> SpooledItems:
        """The config's rows before their images are read, generated once and spooled to disk."""
        if getattr(self, "_items", None) is None:
            cfg = self.config
            index = self.load_index()
            configs = train_configs(cfg.max_images)
            items = SpooledItems()
            self.grids = {}
            for task in self.tasks():
                task_cfg = configs[f"train_{task}"]
                grid = self.grids[task] = GridReport(task_cfg.name)
                for sample in iter_samples(
                    index, task_cfg, num=cfg.per_task, scale=cfg.scale, seed=cfg.seed, min_box_frac=cfg.min_box_frac,
                    strict=cfg.strict, include_catch_all=cfg.include_catch_all, report=grid,
                ):
                    # The conversation has its own rng stream, so changing its settings leaves the samples as they are.
                    rng = np.random.default_rng([sample.seed, 1])
                    turns = conversation_turns(
                        index, sample, rng, option_rate=cfg.option_rate, followup_rate=cfg.followup_rate
                    )
                    items.append(TrainItem(sample, turns))
            self._items = items.seal()
        return self._items

    def parameters(self) -> dict:
        c = self.config
        return {"per_task": c.per_task, "scale": c.scale, "max_images": c.max_images, "seed": c.seed,
                "min_box_frac": c.min_box_frac, "option_rate": c.option_rate, "followup_rate": c.followup_rate,
                "missing_images_skipped": len(getattr(self, "missing_image_ids", []) or []), "strict": c.strict,
                **(bad_images_record(getattr(self, "bad_images", {})) if c.skip_bad_images else {}),
                "include_catch_all": c.include_catch_all, "source_split": self.load_index().source_split,
                **({"grid": {t: g.to_dict() for t, g in self.grids.items()}} if getattr(self, "grids", None) else {})}

    def example(self, item: TrainItem, read: ImageBytes) -> dict:
        row = example_from_sample(item.sample, read)
        row["messages"] = to_messages(item.turns, item.sample.num_images)
        row["num_turns"] = len(item.turns)
        row["turn_tasks"] = [t.kind for t in item.turns]
        row["options"] = [t.options for t in item.turns]
        row["correct_options"] = [t.correct_option for t in item.turns]
        return row

    def llava_records(self) -> list[dict]:
        """The same conversations in LLaVA-NeXT's JSON format (image paths relative to the images folder)."""
        return [
            {"id": item.id, "image": list(item.file_names), "conversations": to_llava(item.turns, item.sample.num_images)}
            for item in self.samples()
        ]

    def _split_generators(self, dl_manager):
        return [datasets.SplitGenerator(name=datasets.Split.TRAIN, gen_kwargs={})]

    def _generate_examples(self):
        read = ImageBytes(self.load_index().images_dir)
        for item in self.samples():
            yield item.id, self.example(item, read)


def drop_missing_images(index: AnnotationIndex) -> tuple[AnnotationIndex, list[str]]:
    """The index without the images whose files are absent, and the ids of those images."""
    if index.images_dir is None:
        raise ConfigError("the training builder needs the images folder (images_dir / --oi-images)")
    root = Path(index.images_dir)
    if not root.is_dir():
        raise ConfigError(f"{root}: images folder not found")
    absent = index.missing_files()
    if not len(absent):
        return index, []
    keep = np.ones(index.num_images, dtype=bool)
    keep[absent] = False
    return index.subset(keep), [str(i) for i in index.image_ids[absent]]
