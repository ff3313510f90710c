"""Publishing Hub-layout folders with huggingface_hub: what would be uploaded, and the upload itself."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from mimic.errors import ConfigError

__all__ = ["upload_plan", "push_folder", "UPLOAD_PATTERNS"]

logger = logging.getLogger(__name__)

# The card and the data; build records (.mimic/) and temporary files stay local.
UPLOAD_PATTERNS = ["README.md", "*/*.parquet"]
_IGNORE = [".*", "*/.*", ".mimic/*"]


def upload_plan(folder: str | os.PathLike) -> list[tuple[str, int]]:
    """(relative path, bytes) of every file `push_folder` uploads, sorted."""
    from fnmatch import fnmatch

    root = Path(folder)
    if not (root / "README.md").is_file():
        raise ConfigError(f"{root}: no README.md dataset card; build the folder with `mimic build` first")
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        if any(fnmatch(rel, pat) for pat in UPLOAD_PATTERNS):
            out.append((rel, p.stat().st_size))
    return out


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    dry_run: bool = False,
    message: str = "Upload MIMIC dataset",
    repo_type: str = "dataset",
    api=None,
) -> list[tuple[str, int]]:
    """Upload `folder` to `repo_id` (created if missing). With `dry_run`, only report the plan."""
    if "/" not in repo_id:
        raise ConfigError(f"repo_id must look like ORG/NAME, got {repo_id!r}")
    plan = upload_plan(folder)
    total = sum(size for _, size in plan)
    lines = [f"{'(dry run) ' if dry_run else ''}{len(plan)} files, {total / 1e6:.1f} MB -> "
             f"https://huggingface.co/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"]
    lines += [f"  {rel}  ({size / 1e6:.2f} MB)" for rel, size in plan]
    print("\n".join(lines))  # noqa: T201 - the plan is the command's output
    if dry_run:
        return plan
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()  # reads HF_TOKEN or the cached login; the token is never printed
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    api.upload_folder(
        folder_path=str(folder), repo_id=repo_id, repo_type=repo_type, commit_message=message,
        allow_patterns=UPLOAD_PATTERNS, ignore_patterns=_IGNORE,
    )
    logger.info("uploaded %d files to %s", len(plan), repo_id)
    return plan
