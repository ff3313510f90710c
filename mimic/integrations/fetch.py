"""Download COCO 2017 or Open Images V7 detections through the FiftyOne zoo (`mimic fetch`).

The zoo downloads only what is asked for (a split, `max_samples` images, the images holding `classes`), shows
its progress, and skips what an earlier, interrupted call already downloaded, so rerunning resumes. It leaves:

- coco: `OUT/<split>/labels.json` (COCO instances JSON, categories with supercategories) and
  `OUT/<split>/data/*.jpg`: `mimic index --source coco --annotations OUT/<split>/labels.json --images OUT/<split>/data`;
- openimages: `OUT/<split>/labels/detections.csv` (the official box CSV), `OUT/<split>/metadata/classes.csv`
  (MID,name) and `OUT/<split>/metadata/hierarchy.json` (the 600-class hierarchy) plus `OUT/<split>/data/*.jpg`:
  `mimic index --source openimages --annotations ... --oi-classes ... --oi-hierarchy ... --images ...`.

`fetch` returns those paths (and the `mimic index` arguments). The download function is a parameter, so
everything up to the network can be exercised without one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from mimic.errors import ConfigError, DataError

__all__ = ["SPLITS", "ZOO_NAMES", "expected_files", "fetch"]

ZOO_NAMES = {"coco": "coco-2017", "openimages": "open-images-v7"}
SPLITS = ("train", "validation", "test")


def expected_files(source: str, out: str | os.PathLike, split: str) -> dict[str, Path]:
    """The files `mimic index` reads, where the zoo leaves them; keys are `mimic index` flags."""
    root = Path(out) / split
    if source == "coco":
        return {"--annotations": root / "labels.json", "--images": root / "data"}
    return {"--annotations": root / "labels" / "detections.csv", "--oi-classes": root / "metadata" / "classes.csv",
            "--oi-hierarchy": root / "metadata" / "hierarchy.json", "--images": root / "data"}


def _is_network_error(err: BaseException) -> bool:
    import socket
    import urllib.error

    kinds: tuple[type, ...] = (ConnectionError, TimeoutError, socket.gaierror, urllib.error.URLError)
    try:
        import requests

        kinds += (requests.exceptions.ConnectionError, requests.exceptions.Timeout)
    except ImportError:
        pass
    seen = err
    while seen is not None:
        if isinstance(seen, kinds):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def fetch(source: str, split: str, out: str | os.PathLike, max_samples: int | None = None,
          classes: Sequence[str] = (), seed: int | None = None,
          download: Callable | None = None) -> dict[str, Path]:
    """Download `split` of `source` ("coco" or "openimages") into `out`; returns `expected_files`.

    download: `fiftyone.zoo.download_zoo_dataset` (the default) or a function with its signature.
    """
    if source not in ZOO_NAMES:
        raise ConfigError(f"unknown source {source!r}; choose from {', '.join(ZOO_NAMES)}")
    if split not in SPLITS:
        raise ConfigError(f"--split {split}: the zoo's splits are {', '.join(SPLITS)}")
    if max_samples is not None and max_samples < 1:
        raise ConfigError(f"--max-samples must be at least 1, got {max_samples}")
    if download is None:
        # The zoo downloads files only: no database needed, unlike `mimic browse`.
        try:
            import fiftyone.zoo as foz
        except ImportError as err:
            raise ConfigError(f"mimic fetch needs FiftyOne ({err}): pip install \"mimic-vlm[fiftyone]\"") from None
        download = foz.download_zoo_dataset
    kwargs: dict = {"split": split, "label_types": ["detections"], "dataset_dir": str(out)}
    if max_samples is not None:
        kwargs["max_samples"] = max_samples
        # A random sample of the split, reproducible, rather than its first files.
        kwargs.update(shuffle=True, seed=0 if seed is None else seed)
    if classes:
        kwargs["classes"] = list(classes)
    try:
        download(ZOO_NAMES[source], **kwargs)
    except Exception as err:
        if _is_network_error(err):
            raise ConfigError(f"mimic fetch {source}: cannot reach the download servers of {ZOO_NAMES[source]} "
                              f"(no network? {type(err).__name__}: {err}); rerun when online, it resumes") from None
        raise
    files = expected_files(source, out, split)
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise DataError(f"the zoo download of {ZOO_NAMES[source]} finished but left no {', '.join(missing)}")
    return files
