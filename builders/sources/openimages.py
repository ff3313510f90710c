"""Open Images V7 boxes (CSV) + class descriptions + box hierarchy -> `AnnotationIndex`.

Inputs (the official files; names as published by Google):

- the box CSV, e.g. `oidv6-train-annotations-bbox.csv` (14.6M rows) or `validation-annotations-bbox.csv`:
  `ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,
  IsInside`, coordinates normalised to [0, 1];
- `class-descriptions-boxable.csv`: `MID,display name`, no header, 601 rows;
- `bbox_labels_600_hierarchy.json`: the class tree (root `/m/0bl9f` "Entity", nested `Subcategory` and
  `Part` lists).

The box CSV is parsed by `pyarrow.csv` (multi-threaded, explicit column types, `LabelName` as a
dictionary) and reduced with numpy; no Python code runs per row. Only the columns the index needs are
converted (`ImageID`, `LabelName`, the four coordinates, `IsGroupOf`, `IsDepiction`); the others
(`Source`, `Confidence`, `IsOccluded`, `IsTruncated`, `IsInside`, and the 8 `XClick*` columns of the
oidv6 train file) may be present or absent and are not parsed. Box files hold only human-verified boxes (`Confidence` is always 1), so it is not a filter.

Decisions:

- **Class names** are the display names lower-cased with runs of white space collapsed ("Tortoise" ->
  "tortoise", "Kitchen & dining room table" -> "kitchen & dining room table"), like COCO's names: they
  read naturally inside a question and the scorer compares case-insensitively anyway. Should two MIDs
  share a readable name (none do in the official 601), every one of them is named
  `"<name> (<MID>)"`: a question never uses an ambiguous name, and the result does not depend on the
  order of the file.
- **Classes** are exactly the rows of the class-descriptions file, in its order, boxes or not.
- **Categories** (Listing): every non-root node of the hierarchy with `Subcategory` children is a category
  named by its class name ("animal", "land vehicle", "kitchen utensil"); its members are its direct
  `Subcategory` children (not its `Part`s), without repeats. A node listed several times in the tree
  ("Sports equipment", with "Ball" below it, appears twice) contributes the union of its listings, in order of first
  appearance. Categories are ordered by a depth-first walk of the tree.
- **Deeper classes**: Open Images does not expand boxes up the hierarchy (an image with a "Sofa bed" box,
  under Couch under Furniture, has no "Couch" box), so Listing treats every class filed under a category
  at any depth, and the node's own class, as part of it (`builders.categories.filed_under`): an image is
  free of "furniture" only with none of them, and an image holding one that is not a member (a sofa bed,
  a plain "Furniture" box) is used for "furniture" neither as a query image nor as a distractor. The
  index keeps only the direct members per category; the deeper levels follow from members that are
  categories themselves. docs/tasks.md ("Listing categories") states the rule.
- **Images** are the distinct `ImageID`s of the box CSV, sorted; `file_name` is `<ImageID>.jpg` in a flat
  `images_dir`. Widths and heights are 0 (unknown: the CSV carries only normalised coordinates, and
  eligibility uses the normalised box fraction `(XMax - XMin) * (YMax - YMin)`); with `images_dir` and at
  most `SIZE_PROBE_LIMIT` images, they are read from the JPEG headers (PIL reads only the header). Pass
  `image_sizes=True`/`False` to force either way.
- `IsGroupOf == 1` marks a crowd box, `IsDepiction == 1` a depiction; -1 (attribute unknown) counts as 0.
- Errors name the file and, where there is one, the field: rows are counted from 1 after the header
  (row r is line r + 1 of the file).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from mimic.builders.index import AnnotationIndex
from mimic.errors import AnnotationError

__all__ = [
    "BOX_COLUMNS",
    "REQUIRED_BOX_COLUMNS",
    "SIZE_PROBE_LIMIT",
    "OpenImagesBoxes",
    "OpenImagesHierarchy",
    "check_image_files",
    "class_names_from_descriptions",
    "missing_images",
    "read_boxes",
    "read_class_descriptions",
    "read_hierarchy",
    "read_openimages",
]

BOX_COLUMNS = (
    "ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax",
    "IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside",
)  # fmt: skip
_COORDS = ("XMin", "XMax", "YMin", "YMax")
_FLAGS = ("IsGroupOf", "IsDepiction")
REQUIRED_BOX_COLUMNS = ("ImageID", "LabelName", *_COORDS, *_FLAGS)
_COLUMN_TYPES = {
    "ImageID": pa.string(),
    "LabelName": pa.dictionary(pa.int32(), pa.string()),
    **{c: pa.float64() for c in _COORDS},
    **{c: pa.int8() for c in _FLAGS},
}
# Reading sizes from JPEG headers costs a file open per image: fine for a sample, not for 1.7M images.
SIZE_PROBE_LIMIT = 5_000
# pyarrow's CSV block: large enough that per-block overhead vanishes, small enough for both cores.
_BLOCK_SIZE = 4 << 20
_CONVERSION_ERROR = re.compile(
    r"In CSV column #(\d+): CSV conversion error to (\w+): invalid value '(.*)'", re.S
)
_PARSE_ERROR = re.compile(r"CSV parse error: (.*?): (.*)", re.S)


# ---------------------------------------------------------------------------------------------- classes
def read_class_descriptions(path: str | os.PathLike) -> dict[str, str]:
    """`class-descriptions-boxable.csv` -> {MID: display name}, in file order.

    The official file has no header; a header row (`LabelName,DisplayName` or `MID,name`) is tolerated.
    """
    path = Path(path)
    text = _read_text(path, "class descriptions file")
    out: dict[str, str] = {}
    for k, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not f.strip() for f in row):
            continue
        if k == 1 and row[0].strip().lower() in ("labelname", "mid", "label_name"):
            continue
        if len(row) != 2:
            raise AnnotationError(
                path, f"line {k}: expected 2 fields (MID,name), got {len(row)}: {row!r}", field="MID"
            )
        mid, name = row[0].strip(), row[1].strip()
        if not mid:
            raise AnnotationError(path, f"line {k}: empty MID", field="MID")
        if not name:
            raise AnnotationError(path, f"line {k}: empty display name for {mid}", field="name")
        if mid in out:
            raise AnnotationError(path, f"line {k}: duplicate MID {mid}", field="MID")
        out[mid] = name
    if not out:
        raise AnnotationError(path, "empty file: no MID,name rows")
    return out


def class_names_from_descriptions(descriptions: Mapping[str, str]) -> dict[str, str]:
    """{MID: display name} -> {MID: class name}: lower-cased, unique (see the module docstring)."""
    readable = {mid: " ".join(name.split()).lower() for mid, name in descriptions.items()}
    uses: dict[str, int] = {}
    for name in readable.values():
        uses[name] = uses.get(name, 0) + 1
    out = {mid: (name if uses[name] == 1 else f"{name} ({mid})") for mid, name in readable.items()}
    if len(set(out.values())) != len(out):  # only if a display name itself looks like "x (/m/...)"
        seen: dict[str, str] = {}
        for mid, name in out.items():
            if name in seen:
                raise AnnotationError(
                    "<class descriptions>",
                    f"class names of {seen[name]} and {mid} collide as {name!r}",
                    field="name",
                )
            seen[name] = mid
    return out


# ---------------------------------------------------------------------------------------------- hierarchy
@dataclass(frozen=True)
class OpenImagesHierarchy:
    """The box hierarchy as parent/child maps of MIDs.

    Attributes:
        root: the root MID (`/m/0bl9f`, "Entity"; not a boxable class).
        nodes: every MID once, root first, in depth-first order of first appearance.
        children: MID -> its direct `Subcategory` children (only nodes that have some).
        parents: MID -> the nodes listing it as a `Subcategory` (the root included).
        parts: MID -> its direct `Part` children (only nodes that have some).
        part_of: MID -> the nodes listing it as a `Part`.
    """

    root: str
    nodes: tuple[str, ...]
    children: dict[str, tuple[str, ...]]
    parents: dict[str, tuple[str, ...]]
    parts: dict[str, tuple[str, ...]]
    part_of: dict[str, tuple[str, ...]]

    def categories(self, names: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
        """Category name -> member class names: every non-root node with subcategories (Listing's parents)."""
        return {
            names[m]: tuple(names[c] for c in self.children[m])
            for m in self.nodes
            if m != self.root and self.children.get(m)
        }


def read_hierarchy(path: str | os.PathLike, known_mids: Iterable[str] | None) -> OpenImagesHierarchy:
    """Parse `bbox_labels_600_hierarchy.json`.

    Every MID except the root must be in `known_mids` (the class list); otherwise an `AnnotationError`
    names the first unknown MID and where it sits. `known_mids=None` skips that check.
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(path, "hierarchy file not found")
    raw = path.read_bytes()
    if not raw.strip():
        raise AnnotationError(path, "empty file")
    try:
        tree = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise AnnotationError(path, f"malformed JSON: {e}") from e
    if not isinstance(tree, dict) or not isinstance(tree.get("LabelName"), str):
        raise AnnotationError(path, "expected a JSON object with a LabelName (the root)", field="LabelName")
    known = None if known_mids is None else set(known_mids)
    root = tree["LabelName"]

    nodes: dict[str, None] = {}  # insertion-ordered set
    rel: dict[str, dict[str, dict[str, None]]] = {"Subcategory": {}, "Part": {}}
    up: dict[str, dict[str, dict[str, None]]] = {"Subcategory": {}, "Part": {}}
    unknown: dict[str, str] = {}  # MID -> where it first appears
    stack: list[tuple[dict, str]] = [(tree, "")]
    while stack:  # depth-first, pre-order (children pushed in reverse)
        node, where = stack.pop()
        mid = node["LabelName"]
        nodes.setdefault(mid, None)
        if known is not None and mid != root and mid not in known:
            unknown.setdefault(mid, where + "LabelName")
        pushed = []
        for key in ("Subcategory", "Part"):
            kids = node.get(key)
            if kids is None:
                continue
            if not isinstance(kids, list):
                raise AnnotationError(path, f"expected a list under {mid}", field=where + key)
            for j, kid in enumerate(kids):
                kid_where = f"{where}{key}[{j}]."
                if not isinstance(kid, dict) or not isinstance(kid.get("LabelName"), str):
                    raise AnnotationError(
                        path, f"child of {mid} has no LabelName", field=kid_where + "LabelName"
                    )
                rel[key].setdefault(mid, {}).setdefault(kid["LabelName"], None)
                up[key].setdefault(kid["LabelName"], {}).setdefault(mid, None)
                pushed.append((kid, kid_where))
        stack.extend(reversed(pushed))
    if unknown:
        mid, where = next(iter(unknown.items()))
        more = f" ({len(unknown)} unknown MIDs in all)" if len(unknown) > 1 else ""
        raise AnnotationError(path, f"MID {mid} at {where} is not in the class list{more}", field="LabelName")

    def freeze(d):
        return {k: tuple(v) for k, v in d.items()}

    return OpenImagesHierarchy(
        root=root,
        nodes=tuple(nodes),
        children=freeze(rel["Subcategory"]),
        parents=freeze(up["Subcategory"]),
        parts=freeze(rel["Part"]),
        part_of=freeze(up["Part"]),
    )


# ---------------------------------------------------------------------------------------------- boxes
@dataclass
class OpenImagesBoxes:
    """The box CSV reduced to arrays: one entry per box, images by position in `image_ids` (sorted)."""

    image_ids: pa.StringArray
    box_image: np.ndarray  # (B,) int32
    box_class: np.ndarray  # (B,) int32, positions in the class list
    box_frac: np.ndarray  # (B,) float32, (XMax - XMin) * (YMax - YMin)
    box_crowd: np.ndarray  # (B,) bool, IsGroupOf == 1
    box_depiction: np.ndarray  # (B,) bool, IsDepiction == 1


def read_boxes(
    path: str | os.PathLike, class_of_mid: Mapping[str, int], *, classes_path: str | os.PathLike | None = None
) -> OpenImagesBoxes:
    """Read and check an Open Images box CSV; `class_of_mid` maps each known MID to its class position."""
    path = Path(path)
    header = _read_header(path)
    missing = [c for c in REQUIRED_BOX_COLUMNS if c not in header]
    if missing:
        raise AnnotationError(
            path, f"missing columns {missing}; the header is {header}", field=", ".join(missing)
        )
    table = _read_table(path, header)
    n = table.num_rows
    if n == 0:
        raise AnnotationError(path, "no box rows after the header")

    # Classes: each chunk's dictionary (a few hundred MIDs) is mapped once, then gathered with numpy.
    box_class = np.empty(n, dtype=np.int32)
    offset = 0
    for chunk in table.column("LabelName").chunks:
        lut = np.array([class_of_mid.get(s, -1) for s in chunk.dictionary.to_pylist()], dtype=np.int32)
        idx = chunk.indices.to_numpy(zero_copy_only=False)
        box_class[offset : offset + len(chunk)] = lut[idx] if len(idx) else lut[:0]
        offset += len(chunk)
    bad = np.flatnonzero(box_class < 0)
    if len(bad):
        labels = table.column("LabelName").take(pa.array(bad)).cast(pa.string())
        distinct = pc.unique(labels)
        source = f"the class list {Path(classes_path).name}" if classes_path is not None else "the class list"
        raise AnnotationError(
            path,
            f"{len(bad):,} rows have a LabelName that is not in {source}, e.g. {labels[0].as_py()!r} at row "
            f"{bad[0] + 1} ({len(distinct):,} distinct unknown labels)",
            field="LabelName",
        )

    # Coordinates: inside [0, 1] (NaN fails too), min <= max; the box fraction of the image area.
    coords = {c: table.column(c).to_numpy() for c in _COORDS}
    for c in _COORDS:
        v = coords[c]
        out = np.flatnonzero(~((v >= 0.0) & (v <= 1.0)))
        if len(out):
            raise AnnotationError(
                path,
                f"row {out[0] + 1} (line {out[0] + 2}): {c} = {float(v[out[0]])} is outside [0, 1] "
                f"({len(out):,} such rows)",
                field=c,
            )
    for lo, hi in (("XMin", "XMax"), ("YMin", "YMax")):
        inverted = np.flatnonzero(coords[lo] > coords[hi])
        if len(inverted):
            r = inverted[0]
            raise AnnotationError(
                path,
                f"row {r + 1} (line {r + 2}): {lo} = {float(coords[lo][r])} > {hi} = {float(coords[hi][r])} "
                f"({len(inverted):,} such rows)",
                field=lo,
            )
    box_frac = ((coords["XMax"] - coords["XMin"]) * (coords["YMax"] - coords["YMin"])).astype(np.float32)
    del coords

    flags = {}
    for c in _FLAGS:
        v = table.column(c).to_numpy()
        odd = np.flatnonzero((v < -1) | (v > 1))
        if len(odd):
            raise AnnotationError(
                path,
                f"row {odd[0] + 1} (line {odd[0] + 2}): {c} = {int(v[odd[0]])} is not 0, 1 or -1",
                field=c,
            )
        flags[c] = v == 1

    image_ids, box_image = _encode_image_ids(path, table.column("ImageID"))
    return OpenImagesBoxes(
        image_ids=image_ids,
        box_image=box_image,
        box_class=box_class,
        box_frac=box_frac,
        box_crowd=flags["IsGroupOf"],
        box_depiction=flags["IsDepiction"],
    )


def _read_text(path: Path, what: str) -> str:
    if not path.is_file():
        raise AnnotationError(path, f"{what} not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise AnnotationError(path, f"not UTF-8 text: {e}") from e
    if not text.strip():
        raise AnnotationError(path, "empty file")
    return text


def _read_header(path: Path) -> list[str]:
    if not path.is_file():
        raise AnnotationError(path, "box annotation file not found")
    with open(path, "rb") as f:
        first = f.readline(1 << 16)
    try:
        line = first.decode("utf-8-sig").strip()
    except UnicodeDecodeError as e:
        raise AnnotationError(path, f"header is not UTF-8 text: {e}") from e
    if not line:
        raise AnnotationError(path, "empty file: expected the header " + ",".join(BOX_COLUMNS))
    return [c.strip() for c in next(csv.reader([line]))]


def _read_table(path: Path, header: list[str]) -> pa.Table:
    # Explicit types; no null markers, so an empty number is a conversion error, not a silent null.
    convert = pacsv.ConvertOptions(
        column_types=_COLUMN_TYPES,
        include_columns=list(REQUIRED_BOX_COLUMNS),
        null_values=[],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    read = pacsv.ReadOptions(use_threads=True, block_size=_BLOCK_SIZE, skip_rows=1, column_names=header)
    try:
        return pacsv.read_csv(path, read_options=read, convert_options=convert)
    except pa.ArrowInvalid as e:
        raise _explain_arrow_error(path, header, str(e)) from e


def _explain_arrow_error(path: Path, header: list[str], message: str) -> AnnotationError:
    """Turn pyarrow's CSV error (which names neither row nor column) into one naming both."""
    m = _CONVERSION_ERROR.search(message)
    if m:
        col_pos, to_type, value = int(m.group(1)), m.group(2), m.group(3)
        column = header[col_pos] if col_pos < len(header) else f"#{col_pos}"
        where = ""
        try:  # Error path only: re-read that one column as text to find the offending row.
            raw = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(block_size=_BLOCK_SIZE, skip_rows=1, column_names=header),
                convert_options=pacsv.ConvertOptions(
                    column_types={column: pa.string()}, include_columns=[column], strings_can_be_null=False
                ),
            ).column(column)
            r = pc.index(raw, value).as_py()
            if r >= 0:
                where = f"row {r + 1} (line {r + 2}): "
        except (pa.ArrowInvalid, KeyError):
            pass
        what = "a number" if to_type in ("double", "float") else "an integer (0, 1 or -1)"
        return AnnotationError(path, f"{where}malformed value {value!r}: expected {what}", field=column)
    m = _PARSE_ERROR.search(message)
    if m:
        problem, row_text = m.group(1), m.group(2).strip()
        line = _find_line(path, row_text.encode())
        where = f"row {line - 1} (line {line}): " if line else ""
        return AnnotationError(path, f"{where}{problem} (expected {len(header)}): {row_text[:200]!r}")
    return AnnotationError(path, f"cannot parse the CSV: {message}")


def _find_line(path: Path, needle: bytes) -> int | None:
    """1-based line of the first line equal to `needle` (error path only; scans in large blocks)."""
    if not needle:
        return None
    lines_before, tail = 0, b""
    with open(path, "rb") as f:
        while block := f.read(64 << 20):
            buf = tail + block
            for pos in _iter_find(buf, needle):
                at_start = (pos == 0 and lines_before == 0) or (pos > 0 and buf[pos - 1 : pos] == b"\n")
                end = pos + len(needle)
                at_end = end == len(buf) or buf[end : end + 1] in (b"\n", b"\r")
                if at_start and at_end:
                    return lines_before + buf.count(b"\n", 0, pos) + 1
            cut = max(buf.rfind(b"\n"), 0)
            lines_before += buf.count(b"\n", 0, cut)
            tail = buf[cut:]
    return None


def _iter_find(buf: bytes, needle: bytes):
    pos = buf.find(needle)
    while pos >= 0:
        yield pos
        pos = buf.find(needle, pos + 1)


def _encode_image_ids(path: Path, ids: pa.ChunkedArray) -> tuple[pa.StringArray, np.ndarray]:
    """Distinct image ids (sorted) and each row's position among them, by hashing (no Python per row)."""
    empty = pc.equal(pc.binary_length(ids), 0)
    if pc.any(empty).as_py():
        r = pc.index(empty, True).as_py()
        raise AnnotationError(path, f"row {r + 1} (line {r + 2}): empty ImageID", field="ImageID")
    encoded = pc.dictionary_encode(ids)
    chunks = encoded.chunks
    # The kernel gives every chunk the same (complete) dictionary; check by buffer identity, cheaply.
    shared = len({c.dictionary.buffers()[1].address for c in chunks if len(c.dictionary)}) <= 1
    if not shared:  # pragma: no cover - defensive: fall back to one contiguous array
        chunks = [pc.dictionary_encode(ids.combine_chunks())]
    uniq = chunks[0].dictionary if chunks else pa.array([], type=pa.string())
    order = pc.sort_indices(uniq).to_numpy()
    rank = np.empty(len(uniq), dtype=np.int32)
    rank[order] = np.arange(len(uniq), dtype=np.int32)
    codes = (
        np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks]) if chunks else np.zeros(0)
    )
    return uniq.take(pa.array(order)), rank[codes.astype(np.int64, copy=False)]


# ---------------------------------------------------------------------------------------------- index
def read_openimages(
    boxes_csv: str | os.PathLike,
    classes_csv: str | os.PathLike,
    hierarchy_json: str | os.PathLike,
    *,
    images_dir: str | os.PathLike | None = None,
    check_images: bool = False,
    image_sizes: bool | None = None,
) -> AnnotationIndex:
    """Read Open Images V7 box annotations into an `AnnotationIndex`.

    Args:
        boxes_csv: the box CSV (all 13 official columns, or at least `REQUIRED_BOX_COLUMNS`).
        classes_csv: `class-descriptions-boxable.csv` (`MID,name`, no header): the index's classes, in order.
        hierarchy_json: `bbox_labels_600_hierarchy.json`: the Listing categories.
        images_dir: flat folder holding `<ImageID>.jpg` (recorded in the index; checked with `check_images`).
        check_images: raise now, listing a few, if image files are missing (see `missing_images` to count
            them without raising).
        image_sizes: read widths/heights from the JPEG headers; default (None): only when `images_dir` is
            given and the set has at most `SIZE_PROBE_LIMIT` images. Otherwise sizes are 0 (unknown).
    """
    descriptions = read_class_descriptions(classes_csv)
    names = class_names_from_descriptions(descriptions)
    hierarchy = read_hierarchy(hierarchy_json, descriptions)
    mids = list(descriptions)
    class_of_mid = {m: c for c, m in enumerate(mids)}
    boxes = read_boxes(boxes_csv, class_of_mid, classes_path=classes_csv)

    ids = boxes.image_ids
    n_img = len(ids)
    file_names = pc.binary_join_element_wise(ids, pa.scalar(".jpg"), pa.scalar("")).to_pylist()
    index = AnnotationIndex.from_boxes(
        source="openimages",
        image_ids=ids.to_pylist(),
        file_names=file_names,
        widths=np.zeros(n_img, dtype=np.int32),
        heights=np.zeros(n_img, dtype=np.int32),
        class_names=[names[m] for m in mids],
        categories=hierarchy.categories(names),
        box_image=boxes.box_image,
        box_class=boxes.box_class,
        box_frac=boxes.box_frac,
        box_crowd=boxes.box_crowd,
        box_depiction=boxes.box_depiction,
        images_dir=images_dir,
        source_split=_oi_split(boxes_csv),
    )
    if images_dir is not None and (image_sizes or (image_sizes is None and n_img <= SIZE_PROBE_LIMIT)):
        _probe_sizes(index)
    if check_images:
        check_image_files(index)
    return index


def _oi_split(boxes_csv: str | os.PathLike) -> str:
    """"train", "validation" or "test" from the official box file names, else ""."""
    m = re.search(r"(train|validation|test)", Path(boxes_csv).name)
    return m.group(1) if m else ""


def _probe_sizes(index: AnnotationIndex) -> None:
    """Fill widths/heights from image headers (PIL opens lazily: no decoding); unreadable files stay 0."""
    from PIL import Image

    root = Path(str(index.images_dir))
    if not root.is_dir():
        return
    for i, name in enumerate(index.file_names):
        try:
            with Image.open(root / name) as im:
                index.widths[i], index.heights[i] = im.size
        except (OSError, ValueError, Image.DecompressionBombError):
            continue


def missing_images(index: AnnotationIndex) -> list[str]:
    """Image ids of the index whose file is not in `index.images_dir` (see `AnnotationIndex.missing_files`)."""
    return [str(index.image_ids[i]) for i in index.missing_files()]


def check_image_files(index: AnnotationIndex) -> None:
    """Raise an `AnnotationError` listing a few of the index's images that are missing on disk."""
    missing = missing_images(index)
    if missing:
        raise AnnotationError(
            index.images_dir,
            f"{len(missing):,} of {index.num_images:,} images listed in the box CSV are missing, "
            f"e.g. {[f'{m}.jpg' for m in missing[:5]]}",
            field="ImageID",
        )
