"""`--model mimic_llava_ov`: lmms-eval's side of the `hf:` adapter, for `train.py` outputs.

`--model_args pretrained=DIR` loads a `train.py` output folder exactly as `mimic eval --model hf:DIR` does
(`mimic.eval.models.hf.HFModel`, which calls `mimic.train_trl.load.load_trained`): a LoRA adapter merged onto
its base, and the per-image attention mask enabled again on the layers it was trained with. Plain checkpoints
load too. The prompt is the adapter's chat template over the doc's images and the task's text.

model_args: pretrained (required), max_new_tokens (default: the task's generation_kwargs), dtype, device,
mask_backend (sdpa, eager, flex_attention), attn_implementation, batch_size (default 1). Decoding is greedy,
as in `mimic eval`; `until` stop strings are not applied (MIMIC's tasks set none).
"""

from __future__ import annotations

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms

from mimic.eval.api import Request, create_model

__all__ = ["MimicLlavaOV"]

_ADAPTER_OPTIONS = ("dtype", "device", "mask_backend", "attn_implementation", "revision")


class MimicLlavaOV(lmms):
    is_simple = True

    def __init__(self, pretrained: str, batch_size: int | str = 1, max_new_tokens: int | str | None = None,
                 **kwargs) -> None:
        super().__init__()
        unknown = sorted(set(kwargs) - set(_ADAPTER_OPTIONS))
        if unknown:
            raise ValueError(f"mimic_llava_ov: unknown model_args {', '.join(unknown)}; it takes pretrained, "
                             f"batch_size, max_new_tokens, {', '.join(_ADAPTER_OPTIONS)}")
        self.batch_size_per_gpu = int(batch_size)
        self._max_new_tokens = None if max_new_tokens is None else int(max_new_tokens)
        options = {k: kwargs.get(k) for k in _ADAPTER_OPTIONS}
        if self._max_new_tokens is not None:
            options["max_new_tokens"] = self._max_new_tokens
        self.adapter = create_model(f"hf:{pretrained}", options)
        self.adapter.load()

    def generate_until(self, requests: list[Instance]) -> list[str]:
        answers: list[str] = []
        gen = self.adapter.generation_config
        default_tokens = gen.max_new_tokens
        for start in range(0, len(requests), self.batch_size_per_gpu):
            chunk = requests[start : start + self.batch_size_per_gpu]
            batch, limits = [], set()
            for context, gen_kwargs, doc_to_visual, doc_id, task, split in (r.args for r in chunk):
                doc = self.task_dict[task][split][doc_id]
                batch.append(Request(id=str(doc.get("id", doc_id)), config=task, task=str(doc.get("task", "")),
                                     question=context, images=doc_to_visual(doc)))
                limits.add((gen_kwargs or {}).get("max_new_tokens"))
            # The task's token limit applies unless model_args set one; a batch shares one generation config.
            task_limit = max((x for x in limits if x is not None), default=None)
            gen.max_new_tokens = self._max_new_tokens or task_limit or default_tokens
            try:
                answers += [g.text for g in self.adapter.generate(batch)]
            finally:
                gen.max_new_tokens = default_tokens
            for r, text in zip(chunk, answers[-len(chunk):], strict=True):
                self.cache_hook.add_partial("generate_until", (r.args[0], r.args[1]), text)
        return answers

    def loglikelihood(self, requests):
        raise NotImplementedError("mimic_llava_ov generates answers; MIMIC's tasks need no log-likelihoods")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("mimic_llava_ov answers single-turn tasks")
