"""Materialize a builder config into a Hub-layout folder, shard by shard, atomically and resumably.

Layout (what `push_to_hub` writes and `load_dataset(folder_or_repo, config)` reads):

    DIR/README.md                                   dataset card; YAML `configs:` names each config
    DIR/<config>/test-00000-of-00002.parquet        rows with the image bytes embedded
    DIR/.mimic/<config>.json                        build record: parameters, statistics (not uploaded)

Shard boundaries come from the planned samples and the image file sizes, before anything is written,
so a rerun after an interruption recomputes the same plan, keeps every finished shard whose
fingerprint matches and writes only the rest. A fingerprint covers everything in the shard (rows, image
bytes by digest, generator version, features; see `shard_fingerprint`), so a rebuild after a source image
or an answer changed rewrites exactly the shards that hold it. A shard is written to a temporary name,
fsynced and renamed into place (`mimic.atomic`), so a half-written shard never carries a final name.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from mimic.atomic import atomic_path
from mimic.builders.sample import GENERATOR_VERSION
from mimic.errors import DataError

__all__ = ["materialize", "plan_shards", "read_build_records", "image_keys", "load_split", "shard_fingerprint", "split_names", "check_parquet_files", "DEFAULT_MAX_SHARD_BYTES", "RECORD_DIR"]

DEFAULT_MAX_SHARD_BYTES = 500 * 1024 * 1024
RECORD_DIR = ".mimic"
_SHARD_META = b"mimic.shard"
_ROWS_PER_GROUP = 16  # keeps row groups (and writer memory) small: a row can hold 35 JPEGs


def plan_shards(sizes: list[int], max_shard_bytes: int) -> list[tuple[int, int]]:
    """Greedy [start, end) ranges of rows whose byte sizes stay under `max_shard_bytes` (at least one row each)."""
    ranges, start, acc = [], 0, 0
    for k, size in enumerate(sizes):
        if k > start and acc + size > max_shard_bytes:
            ranges.append((start, k))
            start, acc = k, 0
        acc += size
    if start < len(sizes) or not ranges:
        ranges.append((start, len(sizes)))
    return ranges


def _canonical_row(row: dict, read) -> bytes:
    """A row as fingerprint input: every column as written, image bytes replaced by their SHA-256 digests.

    The digests come from `read` (an `ImageBytes`), which takes them as it reads the files for the shard.
    """
    canon = {}
    for key, value in row.items():
        if isinstance(value, list) and value and isinstance(value[0], dict) and "bytes" in value[0]:
            value = [{"path": im["path"], "sha256": read.digest(im["path"]).hex()} for im in value]
        canon[key] = value
    return orjson.dumps(canon, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)


def _hasher(features_json: str) -> hashlib._Hash:
    h = hashlib.sha256()
    h.update(f"mimic.shard/2\x1e{GENERATOR_VERSION}\x1e{features_json}\x1e".encode())
    return h


def shard_fingerprint(rows, read, features_json: str) -> str:
    """What a shard holds, as one digest: the generator version, the features, and every row's columns
    (answers, controls, question, ...) with the image bytes by digest, in order.

    Two shards with the same fingerprint hold the same rows; a changed image file, answer or control,
    another generator version or another schema changes it.
    """
    h = _hasher(features_json)
    for row in rows:
        h.update(_canonical_row(row, read) + b"\x1d")
    return h.hexdigest()


def _writer_options(schema: pa.Schema) -> dict:
    """Parquet options per column: JPEG bytes are stored as they are.

    They are already compressed (snappy saves ~2% at twice the write time), and dictionary encoding
    and min/max statistics over megabytes of image bytes cost time and buy nothing.
    """
    buf = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), buf)
    parquet_schema = pq.ParquetFile(pa.BufferReader(buf.getvalue())).schema
    paths = [parquet_schema.column(i).path for i in range(len(parquet_schema))]
    plain = [p for p in paths if not p.endswith(".bytes")]
    return {
        "compression": {p: ("zstd" if p in plain else "none") for p in paths},
        "use_dictionary": plain,
        "write_statistics": plain,
    }


def _stored_fingerprint(path: Path) -> str | None:
    try:
        meta = pq.read_metadata(path).metadata or {}
    except (pa.ArrowInvalid, OSError):
        return None
    raw = meta.get(_SHARD_META)
    return json.loads(raw)["fingerprint"] if raw else None


def materialize(
    builder,
    out_dir: str | os.PathLike,
    *,
    split: str = "test",
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    progress: bool = True,
    cache_bytes: int = 256 * 1024 * 1024,
    num_proc: int = 1,
) -> dict:
    """Write `builder`'s config as `<out_dir>/<config>/<split>-*.parquet`; return the build record.

    `builder` is a `MimicBench`-like builder: `.config.name`, `.info.features`, `.load_index()`,
    `.samples()` (items with `.id` and `.file_names`; `Sample`s or items holding one as `.sample`) and
    `.example(item, read)` (the row, with images read through `read`). `cache_bytes` bounds the memory
    holding image files that several rows embed (per process). `num_proc` > 1 writes the shards in that many
    worker processes (forked); the files are byte-identical to a one-process build.
    """
    from mimic.builders.stats import table1

    out_dir = Path(out_dir)
    name = builder.config.name
    config_dir = out_dir / name
    features = builder.info.features
    features_json = json.dumps(features.to_dict(), sort_keys=True)

    index = builder.load_index()
    images_dir = Path(index.images_dir)
    samples = builder.samples()
    file_size: dict[str, int] = {}
    sizes = []
    position = index.image_to_pos
    for s in samples:
        total = 0
        sample = getattr(s, "sample", s)
        for image_id, f in zip(sample.image_ids, sample.file_names, strict=True):
            if f not in file_size:
                file_size[f] = _checked_size(images_dir / f, index, position[image_id], s.id)
            total += file_size[f]
        sizes.append(total)
    ranges = plan_shards(sizes, max_shard_bytes)
    # Created only now: bad annotations or a wrong images folder leave no empty output folder behind.
    config_dir.mkdir(parents=True, exist_ok=True)
    n = len(ranges)
    wanted = {f"{split}-{k:05d}-of-{n:05d}.parquet" for k in range(n)}
    # Shards of an earlier plan (another size or sharding) would be read alongside ours: remove them.
    for stale in config_dir.glob(f"{split}-*-of-*.parquet"):
        if stale.name not in wanted:
            stale.unlink()

    job = _ShardJob(builder, samples, ranges, config_dir, split, features, features_json, images_dir, cache_bytes)
    written = skipped = 0
    bar = tqdm(total=len(samples), desc=f"{name}: embedding images", unit="row", disable=not progress)
    if num_proc > 1 and n > 1:
        import multiprocessing

        # fork: the workers inherit the planned samples instead of receiving them pickled. Every shard is a
        # function of its rows alone, so which process writes it changes no byte.
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(min(num_proc, n), initializer=_init_worker, initargs=(job,)) as pool:
            for kept, rows, error in pool.imap_unordered(_pool_write_shard, range(n)):
                if error is not None:
                    from mimic.errors import MimicError

                    raise MimicError(error)
                skipped, written = skipped + kept, written + (not kept)
                bar.update(rows)
    else:
        read = job.reader()
        for k in range(n):
            kept, rows = job.write(k, read)
            skipped, written = skipped + kept, written + (not kept)
            bar.update(rows)
    bar.close()

    rows = (vars(getattr(s, "sample", s)) for s in samples)  # one pass, nothing kept (spooled samples stay on disk)
    record = {
        "config": name,
        "split": split,
        "num_rows": len(samples),
        "num_shards": n,
        "num_bytes_images": sum(sizes),
        "source": index.source,
        "builder": type(builder).__name__,
        "parameters": builder.parameters(),
        "generator_version": GENERATOR_VERSION,
        "description": builder.info.description,
        "table1": table1(rows, index)["overall"],
        "shards_written": written,
        "shards_kept": skipped,
    }
    record_dir = out_dir / RECORD_DIR
    record_dir.mkdir(exist_ok=True)
    with atomic_path(record_dir / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
    return record


def _checked_size(path: Path, index, i: int, sample_id: str) -> int:
    """The size in bytes of image file `path` (image `i` of `index`), once it is known to be an image of the
    annotated size: a bad file fails the build here, before anything is written, and is never embedded."""
    from mimic.builders.rows import image_problem
    from mimic.errors import AnnotationError

    problem = image_problem(path, int(index.widths[i]), int(index.heights[i]))
    if problem is not None:
        hint = "" if problem == "not found" else "; replace it, or build with --skip-bad-images"
        raise AnnotationError(path, f"image of sample {sample_id} {problem}{hint}", field="file_name")
    return path.stat().st_size


class _ShardJob:
    """Everything needed to write shard k of a planned config; shared with forked workers."""

    def __init__(self, builder, samples, ranges, config_dir, split, features, features_json, images_dir,
                 cache_bytes):
        self.builder, self.samples, self.ranges = builder, samples, ranges
        self.config_dir, self.split, self.features, self.features_json = config_dir, split, features, features_json
        self.schema, self.options = features.arrow_schema, _writer_options(features.arrow_schema)
        self.images_dir, self.cache_bytes = images_dir, cache_bytes

    def reader(self):
        from mimic.builders.rows import ImageBytes

        return ImageBytes(self.images_dir, self.cache_bytes)

    def write(self, k: int, read) -> tuple[bool, int]:
        """Write shard k unless an identical one is there; (kept, number of rows)."""
        builder, samples, features, schema = self.builder, self.samples, self.features, self.schema
        lo, hi = self.ranges[k]
        n = len(self.ranges)
        path = self.config_dir / f"{self.split}-{k:05d}-of-{n:05d}.parquet"
        stored = _stored_fingerprint(path) if path.exists() else None
        # A finished shard is kept only if its content would be the same: its rows are recomputed (and its
        # images read and digested; they stay cached for the rewrite when they differ).
        if stored is not None and stored == shard_fingerprint(
            (builder.example(s, read) for s in samples[lo:hi]), read, self.features_json
        ):
            return True, hi - lo
        h = _hasher(self.features_json)
        with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema, **self.options) as writer:
            for g in range(lo, hi, _ROWS_PER_GROUP):
                rows = [builder.example(s, read) for s in samples[g : min(g + _ROWS_PER_GROUP, hi)]]
                for r in rows:
                    h.update(_canonical_row(r, read) + b"\x1d")
                batch = features.encode_batch({c: [r[c] for r in rows] for c in features})
                writer.write_table(pa.Table.from_pydict(batch, schema=schema))
            # The fingerprint goes in the footer, computed from the very rows written.
            writer.add_key_value_metadata({_SHARD_META: json.dumps({"fingerprint": h.hexdigest()})})
        return False, hi - lo


_WORKER: tuple | None = None


def _init_worker(job: _ShardJob) -> None:
    global _WORKER
    _WORKER = (job, job.reader())


def _pool_write_shard(k: int) -> tuple[bool, int, str | None]:
    from mimic.errors import MimicError

    job, read = _WORKER
    try:
        return (*job.write(k, read), None)
    except MimicError as err:  # sent back as text: subclasses with their own __init__ do not unpickle
        return False, 0, str(err)


def read_build_records(out_dir: str | os.PathLike) -> dict[str, dict]:
    """The build records of every config materialized in `out_dir`, by config name."""
    records = {}
    for p in sorted((Path(out_dir) / RECORD_DIR).glob("*.json")):
        try:
            rec = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"{p}: not valid JSON ({err}); rebuild the folder with `mimic build`") from None
        if not isinstance(rec, dict) or not {"config", "split"} <= rec.keys():
            raise DataError(f"{p}: not a build record (it needs 'config' and 'split'); rebuild the folder with "
                            "`mimic build`")
        if any((Path(out_dir) / rec["config"]).glob(f"{rec['split']}-*.parquet")):
            records[rec["config"]] = rec
    return records


def image_keys(folder: str | os.PathLike) -> set[tuple[str, str]]:
    """Every (source, image id) used by the rows of a Hub-layout folder (reads two columns only)."""
    keys: set[tuple[str, str]] = set()
    files = sorted(Path(folder).glob("*/*.parquet"))
    if not files:
        raise DataError(f"{folder}: no parquet shards found (expected <config>/<split>-*.parquet)")
    check_parquet_files([str(f) for f in files], ("source", "image_ids"))
    for path in files:
        table = pq.read_table(path, columns=["source", "image_ids"])
        for source, ids in zip(table.column("source").to_pylist(), table.column("image_ids").to_pylist(), strict=True):
            keys.update((source, i) for i in ids)
    return keys


def card_data_files(data: str) -> dict[str, dict[str, list[str]]] | None:
    """{config: {split: files}} of a local folder by its card's YAML `configs:`, the folder's path taken
    literally (None: no card, or one without data files).

    `datasets` joins the card's patterns to the folder's path and globs the whole, so a folder named
    `bench [2]` read its sibling `bench 2` and `bench [v2]` read nothing. Here only the card's own pattern is
    a pattern: the folder's path is escaped.
    """
    import glob

    readme = Path(data) / "README.md"
    if not readme.is_file():
        return None
    from datasets.data_files import sanitize_patterns
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard

    try:
        configs = MetadataConfigs.from_dataset_card_data(DatasetCard.load(readme).data)
    except (ValueError, TypeError) as err:
        raise DataError(f"{readme}: not a readable dataset card ({' '.join(str(err).split())})") from None
    if not configs or not all("data_files" in c for c in configs.values()):
        return None
    base = glob.escape(os.path.abspath(data))
    out = {}
    for name, cfg in configs.items():
        out[name] = {
            str(split): sorted({f for p in patterns for f in glob.glob(os.path.join(base, p)) if os.path.isfile(f)})
            for split, patterns in sanitize_patterns(cfg["data_files"]).items()
        }
    return out


def _data_files(data: str, config: str | None) -> dict[str, list[str]]:
    """The data files of each split of `config` in a local folder, as its card (or the folder layout) says."""
    from datasets import load_dataset_builder

    card = card_data_files(data) if config is not None else None
    if card is not None:
        if config not in card:
            raise DataError(f"{data}: not a readable dataset folder for config {config!r} (its card names "
                            f"{', '.join(card)})")
        return card[config]
    try:
        files = load_dataset_builder(data, config).config.data_files or {}
    except (FileNotFoundError, ValueError) as err:  # no data files, a config the card lacks, mixed formats
        raise DataError(f"{data}: not a readable dataset folder for config {config!r} ({err})") from None
    return {str(split): list(paths) for split, paths in files.items()}


def check_parquet_files(files: list[str], columns: Sequence[str] = (), what: str = "a MIMIC dataset") -> None:
    """Raise DataError naming the first file that is not a readable parquet file or lacks one of `columns`.

    Only the footers are read, so this is cheap enough to run on every folder before any row is.
    """
    for path in files:
        if not str(path).endswith(".parquet"):
            raise DataError(f"{path}: not a parquet file; {what} folder holds <config>/<split>-*.parquet")
        try:
            names = set(pq.read_schema(path).names)
        except (pa.ArrowInvalid, OSError) as err:
            raise DataError(f"{path}: not a readable parquet file ({err})") from None
        missing = [c for c in columns if c not in names]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)}: not {what} (its columns: "
                            f"{', '.join(sorted(names)) or 'none'})")


def load_split(data: str, config: str | None, split: str = "test", cache_dir: str | None = None,
               columns: Sequence[str] = ()):
    """`load_dataset(data, config, split=split)`, reading a local folder by its files' paths.

    `load_dataset(folder, config)` caches the converted arrow data under the folder's *base name* and the
    card's relative file patterns, so two folders both called "bench" (or one rebuilt in place) would share
    a cache entry and the second would silently return the first's rows. With explicit data files the
    cache key holds their absolute paths and modification times. A Hub id is cached by its revision.

    `columns`: columns the caller needs; a local folder's files are checked for them (and for being
    parquet at all) before anything is loaded, a Hub dataset once loaded. Raises DataError naming the
    folder or file at fault.
    """
    from datasets import load_dataset

    if not os.path.isdir(data):
        ds = load_dataset(data, config, split=split, cache_dir=cache_dir)
        missing = [c for c in columns if c not in ds.column_names]
        if missing:
            raise DataError(f"{data} (config {config!r}): missing column(s) {', '.join(missing)}: not a MIMIC dataset")
        return ds
    splits = _data_files(data, config)
    if split not in splits:
        raise DataError(f"{data}: config {config!r} has no {split!r} split (its splits: "
                        f"{', '.join(splits) or 'none'})")
    files = splits[split]
    if not files:
        raise DataError(f"{data}: no files for config {config!r}, split {split!r} (the card names them, the "
                        "folder lacks them: rebuild it with `mimic build`)")
    check_parquet_files(files, columns)
    import glob

    # `datasets` globs data files too: escaped, each names its one file.
    return load_dataset("parquet", data_files={split: [glob.escape(f) for f in files]}, split=split,
                        cache_dir=cache_dir)


def split_names(data: str, config: str | None) -> list[str]:
    """The splits of `config` of a local folder (by its card) or a Hub dataset."""
    if os.path.isdir(data):
        return list(_data_files(data, config))
    from datasets import get_dataset_split_names

    return list(get_dataset_split_names(data, config))
