"""`openai:<model>`: any OpenAI-compatible chat completions endpoint (`vllm serve`, hosted APIs).

Each sample is one user message whose content is the images, in order, as base64 JPEG data URLs
(`{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,..."}}`), then the question as a
text part; `temperature` 0 and `max_tokens` bound the answer. The base URL and the key come from the
options or from the usual environment variables OPENAI_BASE_URL and OPENAI_API_KEY (a local vLLM server
needs no key). HTTP is the standard library's urllib: every call has a timeout, and 429 and 5xx answers,
timeouts and dropped connections are retried a few times with exponential backoff (a Retry-After header
is honoured, up to a minute). The key is sent only in the Authorization header: it is never logged, never
in an error message, never in results.json.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from mimic.errors import ConfigError, MimicError
from mimic.eval.api import Generation, ModelAdapter, Request, option, register_model

__all__ = ["DEFAULT_BASE_URL", "EndpointError", "OpenAIModel", "OpenAIOptions", "image_data_url"]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_RETRY_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
_MAX_RETRY_AFTER_S = 60.0


class EndpointError(MimicError, RuntimeError):
    """The endpoint refused a request or kept failing after the retries. The message names the URL.

    A MimicError: a server that is down or a wrong --base-url is the user's to fix, not a bug.
    """


@dataclass
class OpenAIOptions:
    base_url: str | None = option(None, identity=False, help="API base URL, e.g. http://localhost:8000/v1 "
                                  f"(default: $OPENAI_BASE_URL, else {DEFAULT_BASE_URL}).")
    api_key: str | None = option(None, secret=True, help="API key (default: $OPENAI_API_KEY; none for a local "
                                 "server). Prefer the environment variable: options show up in process lists.")
    max_new_tokens: int = option(64, help="max_tokens of each completion.")
    temperature: float = option(0.0, help="Sampling temperature (0: greedy, as for local models).")
    jpeg_quality: int = option(90, help="JPEG quality of the images sent.")
    timeout_s: float = option(120.0, identity=False, help="Timeout of one HTTP request, in seconds.")
    max_retries: int = option(3, identity=False, help="Retries of a request after a 429/5xx answer, a "
                              "timeout or a dropped connection.")
    retry_backoff_s: float = option(1.0, identity=False, help="First retry delay; it doubles at each retry.")
    concurrency: int = option(4, identity=False, help="Requests of a batch sent in parallel.")

    def __post_init__(self):
        for name, ok, rule in (("max_retries", self.max_retries >= 0, ">= 0"),
                               ("concurrency", self.concurrency >= 1, ">= 1"),
                               ("timeout_s", self.timeout_s > 0, "> 0"),
                               ("jpeg_quality", 1 <= self.jpeg_quality <= 95, "in 1..95")):
            if not ok:
                raise ConfigError(f"{name} must be {rule}, got {getattr(self, name)}")


def image_data_url(image, quality: int = 90) -> str:
    """`image` (PIL) as a base64 JPEG data URL; other modes are converted to RGB (JPEG has no alpha)."""
    buf = io.BytesIO()
    (image if image.mode == "RGB" else image.convert("RGB")).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@register_model("openai")
class OpenAIModel(ModelAdapter):
    """Chat completions over HTTP (see the module docstring)."""

    Options = OpenAIOptions
    takes_target = True

    def __init__(self, target: str | None = None, options: OpenAIOptions | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        super().__init__(target, options)
        o = self.options
        self.base_url = (o.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self._api_key = o.api_key or os.environ.get("OPENAI_API_KEY") or None
        self._sleep = sleep

    @property
    def url(self) -> str:
        return self.base_url + "/chat/completions"

    def payload(self, request: Request) -> dict:
        """The JSON body for one sample."""
        parts = [
            {"type": "image_url", "image_url": {"url": image_data_url(im, self.options.jpeg_quality)}}
            for im in request.images
        ]
        parts.append({"type": "text", "text": request.question})
        return {
            "model": self.target,
            "messages": [{"role": "user", "content": parts}],
            "max_tokens": self.options.max_new_tokens,
            "temperature": self.options.temperature,
        }

    def _post(self, body: bytes) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        o = self.options
        delay = o.retry_backoff_s
        for attempt in range(o.max_retries + 1):
            req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            retry_after: float | None = None
            try:
                with urllib.request.urlopen(req, timeout=o.timeout_s) as resp:
                    return json.loads(resp.read())
            except urllib.error.HTTPError as err:
                detail = err.read()[:300].decode("utf-8", "replace")
                if err.code not in _RETRY_STATUS or attempt == o.max_retries:
                    raise EndpointError(f"{self.url}: HTTP {err.code} after {attempt + 1} attempt(s): {detail}") from None
                retry_after = _retry_after(err.headers.get("Retry-After"))
                reason = f"HTTP {err.code}"
            except (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError) as err:
                if attempt == o.max_retries:
                    raise EndpointError(f"{self.url}: {err} after {attempt + 1} attempt(s); is the server up, and "
                                        "is base_url (--base-url, $OPENAI_BASE_URL) right?") from None
                reason = type(err).__name__
            wait = delay if retry_after is None else retry_after
            logger.warning("%s: %s, retry %d/%d in %.1fs", self.url, reason, attempt + 1, o.max_retries, wait)
            self._sleep(wait)
            delay *= 2
        raise AssertionError("unreachable")  # the loop returns or raises

    def _one(self, request: Request) -> Generation:
        reply = self._post(json.dumps(self.payload(request)).encode("utf-8"))
        try:
            choice = reply["choices"][0]
            content = choice["message"].get("content")
        except (KeyError, IndexError, TypeError) as err:
            raise EndpointError(f"{self.url}: unexpected reply for sample {request.id}: {str(reply)[:300]}") from err
        if isinstance(content, list):  # some servers return content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        usage = reply.get("usage") or {}
        info = {"finish_reason": choice.get("finish_reason")}
        if "prompt_tokens" in usage:
            info["input_tokens"] = usage["prompt_tokens"]
        if "completion_tokens" in usage:
            info["output_tokens"] = usage["completion_tokens"]
        return Generation((content or "").strip(), info)

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        if self.options.concurrency == 1 or len(requests) == 1:
            return [self._one(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.options.concurrency, len(requests))) as pool:
            return list(pool.map(self._one, requests))

    def describe(self) -> dict:
        return {**super().describe(), "base_url": _without_userinfo(self.base_url),
                "authenticated": bool(self._api_key)}


def _without_userinfo(url: str) -> str:
    """`url` without "user:password@", which must not reach results.json either."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), _MAX_RETRY_AFTER_S)
    except ValueError:
        return None  # an HTTP date: fall back to the backoff
