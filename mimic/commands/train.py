"""Training-side commands: `mimic tiny-model`, `mimic demo-trainset`, `mimic push-model`, `mimic flops`.

Training itself is `accelerate launch train_trl/train.py --config train_trl/configs/<run>.yaml` (see
`make train-masked` / `make train-full`); these commands prepare its inputs, publish its output and estimate
its cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mimic.cli import check_numbers, check_repo_id, command, opt
from mimic.errors import ConfigError

# Files of a training output folder that are not part of the published model.
PUSH_IGNORE = ["checkpoint-*", "checkpoint-*/**", "runs/**", "*.pyc", "__pycache__/**"]


@dataclass
class TinyModelOptions:
    out: str = opt(help="Folder to write the model and processor to (created).", metavar="DIR")
    seed: int = opt(0, help="Seed of the random initialisation.")
    layers: int = opt(4, help="Decoder layers of the tiny language model.")
    family: str = opt("llava_onevision", choices=["llava_onevision", "qwen2_vl", "internvl"],
                      help="Model family: llava_onevision (LlavaOnevisionForConditionalGeneration, SigLIP at 16 px, "
                      "5 <image> tokens per image of a multi-image sample); qwen2_vl (Qwen2VLForConditionalGeneration, "
                      "images resized to 56x56..112x112 px, 4..16 <|image_pad|> tokens each); internvl "
                      "(InternVLForConditionalGeneration, 56 px tiles, up to 12 + a thumbnail per image, 4 "
                      "<IMG_CONTEXT> tokens per tile).")


_FAMILY_NAMES = {"llava_onevision": "LLaVA-OneVision", "qwen2_vl": "Qwen2-VL", "internvl": "InternVL"}


@command("tiny-model", TinyModelOptions)
def run_tiny_model(o: TinyModelOptions) -> int:
    """Write a tiny random vision-language model (about 0.2M parameters) and its processor, fully offline.

    --family picks LLaVA-OneVision (the default: the model of the TINY=1 training runs), Qwen2-VL or InternVL.
    Each folder is a checkpoint that `mimic eval --model hf:DIR` loads like the family's Hub checkpoints (same
    classes, chat template and image-token rules, scaled down); see mimic/tiny.py for the geometry.
    """
    from mimic.tiny import save_tiny

    if o.layers < 1:
        raise ConfigError(f"--layers must be at least 1, got {o.layers}")
    path = save_tiny(o.out, seed=o.seed, num_layers=o.layers, family=o.family)
    print(f"wrote the tiny {_FAMILY_NAMES[o.family]} ({o.layers} layers, seed {o.seed}) to {path}")
    return 0


@dataclass
class DemoTrainsetOptions:
    out: str = opt(help="Folder for the Hub-layout dataset (README.md + <task>/train-*.parquet).", metavar="DIR")
    per_task: int = opt(8, help="Samples per task (counting, common, odd-one, listing).")
    seed: int = opt(0, help="Seed of the synthetic world and of the generators.")
    world_images: int = opt(120, help="Scenes in the synthetic world.")
    image_size: int = opt(96, help="Width and height of the rendered scenes, in pixels.")
    max_images: int = opt(4, help="Most images in one conversation.")


@command("demo-trainset", DemoTrainsetOptions)
def run_demo_trainset(o: DemoTrainsetOptions) -> int:
    """Build a small multi-image training set in TRL's conversational format from the synthetic world.

    The MIMIC training set (`mimic build train --source synthetic`) on a small rendered world: rows hold
    `images` (2 to --max-images) and `messages` (one or more question/answer turns, some with lettered
    options). `load_dataset(DIR, split="train")` reads all tasks, as train.py's `dataset_mixture` does.
    """
    from mimic.train_trl.data import build_demo_trainset

    if o.per_task < 1:
        raise ConfigError(f"--per-task must be at least 1, got {o.per_task}")
    path = build_demo_trainset(o.out, num_per_task=o.per_task, seed=o.seed, world_images=o.world_images,
                               image_size=o.image_size, max_images=o.max_images)
    print(f"wrote {4 * o.per_task} training conversations to {path}")
    return 0


@dataclass
class PushModelOptions:
    dir: str = opt(help="A training output folder (model or LoRA adapter, processor, README.md).",
                   positional=True, metavar="DIR")
    repo: str = opt(help="Hub repository to create or update.", metavar="ORG/NAME")
    private: bool = opt(False, help="Create the repository as private.")
    dry_run: bool = opt(False, help="List the files that would be uploaded; never touches the network.")
    revision: str | None = opt(None, help="Branch to push to (default: main).")
    message: str = opt("Upload model trained with mimic-vlm", help="Commit message.")


def files_to_push(folder: Path) -> list[Path]:
    """The files `push-model` uploads (relative paths), with the same filter `upload_folder` applies."""
    from huggingface_hub.utils import filter_repo_objects

    rel = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    return [Path(p) for p in filter_repo_objects(rel, ignore_patterns=PUSH_IGNORE)]


@command("push-model", PushModelOptions)
def run_push_model(o: PushModelOptions) -> int:
    """Upload a trained model or adapter folder to the Hub with its model card.

    The token comes from the usual places (HF_TOKEN, `hf auth login`); it is never printed. Training
    checkpoints (`checkpoint-*`) and logs are left out. `--dry-run` only lists what would be sent.
    """
    folder = Path(o.dir)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder")
    if not ((folder / "config.json").exists() or (folder / "adapter_config.json").exists()):
        raise ConfigError(f"{folder} holds neither config.json nor adapter_config.json: not a trained model folder")
    if not (folder / "README.md").exists():
        raise ConfigError(f"{folder} has no README.md model card (train.py writes one)")
    check_repo_id(o.repo)
    files = files_to_push(folder)
    total = sum((folder / f).stat().st_size for f in files)
    if o.dry_run:
        print(f"dry run: would upload {len(files)} files ({total / 1e6:.1f} MB) to "
              f"{'private ' if o.private else ''}model repo {o.repo}" + (f" ({o.revision})" if o.revision else ""))
        for f in files:
            print(f"  {f}  ({(folder / f).stat().st_size} bytes)")
        return 0

    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(o.repo, repo_type="model", private=o.private, exist_ok=True)
    if o.revision:
        api.create_branch(o.repo, branch=o.revision, exist_ok=True)
    info = api.upload_folder(folder_path=str(folder), repo_id=o.repo, repo_type="model", revision=o.revision,
                             commit_message=o.message, ignore_patterns=PUSH_IGNORE)
    print(f"uploaded {len(files)} files to https://huggingface.co/{o.repo} ({getattr(info, 'oid', info)})")
    return 0


@dataclass
class FlopsOptions:
    paper: bool = opt(False, help="Reproduce Table 7 of the paper from its Eq. 1.")
    train_config: str | None = opt(
        None, help="A training YAML: its model and masked layers are estimated.", metavar="YAML")
    model_config: str | None = opt(
        None, help="Checkpoint folder or Hub id whose text config sets the shapes (default: the YAML's model).",
        metavar="PATH_OR_ID")
    masked_layers: str | None = opt(None, help="Masked layers, e.g. 12-23 (default: the YAML's).")
    images: float = opt(10.4, help="Images per sample (paper average: 10.4).")
    tokens_per_image: float = opt(730, help="Tokens per image (LLaVA-OV multi-image: 729 + 1 newline).")
    text_tokens: float = opt(17.4, help="Text tokens per sample (paper average: 17.4).")
    text_before: float = opt(3, help="Of those, tokens before the images ('<|im_start|>user ').")
    within_image: str = opt("causal", help="Attention inside an image in masked layers.",
                            choices=["causal", "bidirectional"])


@command("flops", FlopsOptions)
def run_flops(o: FlopsOptions) -> int:
    """FLOPs of full vs per-image masked attention: the paper's Eq. 1, or an honest estimate for a real run.

    `--paper` recomputes Table 7 (58B -> 11.2B at d = 896, 107B -> 26.7B at d = 1536) from Eq. 1. With a
    training config (or `--model-config` and `--masked-layers`) it counts every decoder layer of the real
    model: grouped-query projections, the real MLP width, causal attention in unmasked layers and the
    per-image mask only in the masked ones.
    """
    from mimic.train_trl import flops
    from mimic.train_trl.masking import parse_layers

    check_numbers(("--images", o.images, 0, None), ("--tokens-per-image", o.tokens_per_image, 0, None),
                  ("--text-tokens", o.text_tokens, 0, None), ("--text-before", o.text_before, 0, None))
    if not o.paper and o.train_config is None and o.model_config is None:
        raise ConfigError("give --paper, --train-config YAML, or --model-config with --masked-layers")
    if o.paper:
        print(flops.format_paper_table())
    if o.train_config is None and o.model_config is None:
        return 0
    model, layers_text = o.model_config, o.masked_layers
    if o.train_config is not None:
        from mimic.train_trl.config import DEFAULT_MODEL, parse_train_config

        script, _, model_args = parse_train_config(o.train_config, check_hardware=False)
        model = model or model_args.model_name_or_path or DEFAULT_MODEL
        layers_text = script.masked_layers if layers_text is None else layers_text
    try:
        layers = parse_layers(layers_text or "")
        shape = flops.text_shape_of(model)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    bad = [i for i in layers if i >= shape.num_layers]
    if bad:
        raise ConfigError(f"masked layers {bad} do not exist in {model} ({shape.num_layers} layers)")
    est = flops.estimate_run(shape, layers, num_images=o.images, tokens_per_image=o.tokens_per_image,
                             text_before=o.text_before, text_after=o.text_tokens - o.text_before,
                             within_image=o.within_image)
    if o.paper:
        print()
    print(flops.format_run_estimate(est, label=f"{model}\n"))
    return 0
