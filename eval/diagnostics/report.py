"""The diagnostics in `mimic report`: a folder written by `mimic diagnose ...` becomes a report section.

`mimic report` hands every folder that holds pooling.json, attention.json or stitch.json here instead of
reading it as an eval run; each becomes a section of report.md with its numbers as a table and its plots
copied beside report.md.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from mimic.errors import DataError

__all__ = ["DIAGNOSTIC_FILES", "diagnostics_markdown", "is_diagnostic", "write_diagnostics"]

DIAGNOSTIC_FILES = {"pooling": "pooling.json", "attention": "attention.json", "stitch": "stitch.json",
                    "answer_attention": "answer_attention.json"}
PLOTS = {"pooling": ["pooling.png"], "attention": ["attention_by_layer.png", "attention_heatmaps.png"],
         "stitch": ["stitch.png"], "answer_attention": ["answer_attention.png"]}


def is_diagnostic(folder: str | Path) -> bool:
    return any((Path(folder) / name).is_file() for name in DIAGNOSTIC_FILES.values())


def _pct(x) -> str:
    return "\u2014" if x is None else f"{100 * x:.1f}"


def _section(kind: str, data: dict, folder: Path, out: Path, k: int) -> list[str]:
    model = data.get("model") or ", ".join(data.get("models", {}))
    lines = [f"### {kind}: {model} ({folder})", ""]
    if data.get("where"):
        lines += ["Rows: " + ", ".join(f"{c} in {{{', '.join(v)}}}" for c, v in data["where"].items()), ""]
    if kind == "pooling":
        lines += ["`kept`: share of the encoder's pixels the pixel control keeps (mean over the images used).", "",
                  "| arm | f | vision tokens / image | kept | config | score % | 95% CI |",
                  "|---|---:|---:|---:|---|---:|---|"]
        for arm, entries in data["arms"].items():
            for e in entries:
                tok, kept = e.get("vision_tokens_per_image"), e.get("kept")
                for c, s in e["configs"].items():
                    lines.append(f"| {arm} | {e['factor']} | {'' if tok is None else f'{tok:.0f}'} | "
                                 f"{'' if kept is None else f'{kept:.3f}'} | {c} | "
                                 f"{_pct(s['score'])} | [{_pct(s['ci_low'])}, {_pct(s['ci_high'])}] |")
    elif kind == "attention":
        used = ", ".join(f"{c} {n}" for c, n in data.get("rows_used", {}).items())
        lines += [f"{data['samples']} samples (by number of images: {data['num_images']}; rows per config: "
                  f"{used or 'not recorded'}); vision-to-vision attention in %. Uniform attention under the same "
                  f"causal mask and layout gives inter {_pct(data.get('chance_inter'))}.", "",
                  "| layer | inter | intra |", "|---:|---:|---:|"]
        lines += [f"| {e['layer']} | {_pct(e['inter'])} | {_pct(e['intra'])} |" for e in data["layers"]]
    elif kind == "answer_attention":
        lines += [f"Layer {data['layer']} ({data.get('layer_index', '0-based')}): share of the answer's attention "
                  "on each image (%).", "",
                  "| model | sample | answer | image shares |", "|---|---|---|---|"]
        for spec, per_sample in data["models"].items():
            for sid, e in per_sample.items():
                lines.append(f"| {spec} | {sid} | {e['answer']!r} | {' '.join(_pct(m) for m in e['mass'] or [])} |")
    else:
        lines += [data["table6"], "", f"Vision tokens stitched / multi-image: {data['token_ratio']:.3f} (mean over "
                  f"samples; {data['sizing']}); {len(data['mismatch'])} samples off by more than "
                  f"{100 * data['mismatch_threshold']:.0f}%.", "",
                  "| config | arm | n | score % | vision tokens |", "|---|---|---:|---:|---:|"]
        for c, arms in data["configs"].items():
            for arm in ("multi", "stitched"):
                s = arms.get(arm)
                if s:
                    tok = s.get("vision_tokens")
                    lines.append(f"| {c} | {arm} | {s['n']} | {_pct(s['score'])} | "
                                 f"{'' if tok is None else f'{tok:.0f}'} |")
    lines.append("")
    for plot in PLOTS[kind]:
        src = folder / plot
        if src.is_file():
            name = f"diag{k}_{plot}"
            shutil.copyfile(src, out / name)
            lines += [f"![{kind}]({name})", ""]
    return lines


def diagnostics_markdown(folders: Sequence[str | Path], out: str | Path) -> str:
    """The "Diagnostics" section for `folders` (copies their plots into `out`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["## Diagnostics", ""]
    k = 0
    for folder in map(Path, folders):
        for kind, name in DIAGNOSTIC_FILES.items():
            path = folder / name
            if not path.is_file():
                continue
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise DataError(f"{path}: not valid JSON ({err})") from None
            if data.get("analysis") != kind:
                raise DataError(f"{path}: not written by `mimic diagnose {kind}`")
            k += 1
            lines += _section(kind, data, folder, out, k)
    return "\n".join(lines)


def write_diagnostics(folders: Sequence[str | Path], out: str | Path, title: str, append: bool) -> Path:
    """The diagnostics section appended to OUT/report.md (`append`: just written for the eval runs), or
    a report.md of its own under `title`; returns its path."""
    from mimic.atomic import atomic_path

    report = Path(out) / "report.md"
    section = diagnostics_markdown(folders, out)
    head = report.read_text(encoding="utf-8").rstrip() + "\n\n" if append else f"# {title}\n\n"
    with atomic_path(report) as tmp:
        Path(tmp).write_text(head + section.rstrip() + "\n", encoding="utf-8")
    return report
