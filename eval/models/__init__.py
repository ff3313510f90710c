"""Built-in model adapters; importing a module registers its adapters in `mimic.eval.api.MODELS`.

- `hf`: transformers checkpoints (LLaVA-OneVision, Qwen2-VL / Qwen2.5-VL, InternVL `-hf`), `hf:<id or path>`.
- `openai_compat`: any OpenAI-compatible chat endpoint (vLLM, hosted APIs), `openai:<model>`.
- `baselines`: `oracle`, `random` and `prior`, which need no model at all.
"""

__all__: list[str] = []  # the modules register adapters; import them by name
