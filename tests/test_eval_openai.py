"""The `openai:` adapter against a local HTTP server on 127.0.0.1: the request it sends, retries, errors,
and that the API key never reaches logs or run files."""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from mimic.builders.cards import write_dataset_card
from mimic.builders.hub_folder import materialize
from mimic.builders.mimic_demo import MimicDemo
from mimic.eval.api import Request, create_model
from mimic.eval.models.openai_compat import EndpointError, OpenAIModel, OpenAIOptions
from mimic.eval.runner import EvalSettings, run_eval

KEY = "sk-test-0123456789-secret"
COLORS = [(255, 0, 0), (0, 200, 0), (0, 0, 255)]


class FakeEndpoint:
    """A chat completions server: replies with `statuses` in turn (then 200), recording every request."""

    def __init__(self, statuses=(), answer="There are 3 stars."):
        self.requests: list[dict] = []
        self.statuses = list(statuses)
        self.answer = answer
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the http.server API)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                endpoint.requests.append({"path": self.path, "headers": dict(self.headers),
                                          "body": json.loads(body)})
                status = endpoint.statuses.pop(0) if endpoint.statuses else 200
                if status == 200:
                    payload = {"choices": [{"message": {"role": "assistant", "content": f"  {endpoint.answer}\n"},
                                            "finish_reason": "stop"}],
                               "usage": {"prompt_tokens": 1234, "completion_tokens": 5}}
                else:
                    payload = {"error": {"message": f"status {status}"}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep pytest output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _request():
    images = [Image.new("RGB", (32, 24), c) for c in COLORS]
    return Request(id="s1", config="counting_balanced", task="counting", question="How many stars are there?",
                   images=images, sample={})


def _decode(url: str) -> Image.Image:
    prefix = "data:image/jpeg;base64,"
    assert url.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(url[len(prefix):])))


def test_request_shape_auth_and_retry_after_a_500(caplog):
    sleeps: list[float] = []
    with FakeEndpoint(statuses=[500]) as server, caplog.at_level(logging.DEBUG):
        model = OpenAIModel("my-vlm", OpenAIOptions(base_url=server.base_url, api_key=KEY, max_new_tokens=16,
                                                    retry_backoff_s=0.25, concurrency=1), sleep=sleeps.append)
        [gen] = model.generate([_request()])
    assert gen.text == "There are 3 stars."
    assert gen.info == {"finish_reason": "stop", "input_tokens": 1234, "output_tokens": 5}
    assert len(server.requests) == 2 and sleeps == [0.25]  # one retry after the 500, with the backoff
    for req in server.requests:
        assert req["path"] == "/v1/chat/completions"
        assert req["headers"]["Authorization"] == f"Bearer {KEY}"
        assert req["headers"]["Content-Type"] == "application/json"
    body = server.requests[-1]["body"]
    assert body["model"] == "my-vlm" and body["max_tokens"] == 16 and body["temperature"] == 0.0
    [message] = body["messages"]
    assert message["role"] == "user"
    parts = message["content"]
    assert [p["type"] for p in parts] == ["image_url"] * 3 + ["text"]
    assert parts[-1]["text"] == "How many stars are there?"
    for part, color in zip(parts[:3], COLORS, strict=True):  # the images, in order
        image = _decode(part["image_url"]["url"])
        assert image.format == "JPEG" and image.size == (32, 24)
        assert all(abs(a - b) < 12 for a, b in zip(image.getpixel((16, 12)), color, strict=True))
    # The key is sent, never shown.
    assert KEY not in caplog.text and "HTTP 500" in caplog.text
    assert KEY not in repr(model.options) and KEY not in json.dumps(model.describe())
    assert KEY not in json.dumps(model.identity())


def test_client_errors_are_not_retried_and_retries_are_bounded():
    with FakeEndpoint(statuses=[400]) as server:
        model = OpenAIModel("m", OpenAIOptions(base_url=server.base_url, retry_backoff_s=0.0))
        with pytest.raises(EndpointError, match="HTTP 400 after 1 attempt"):
            model.generate([_request()])
        assert len(server.requests) == 1
        assert "Authorization" not in server.requests[0]["headers"]  # no key given, none sent
    with FakeEndpoint(statuses=[429, 503, 502]) as server:
        model = OpenAIModel("m", OpenAIOptions(base_url=server.base_url, retry_backoff_s=0.0, max_retries=2))
        with pytest.raises(EndpointError, match="HTTP 502 after 3 attempt"):
            model.generate([_request()])
        assert len(server.requests) == 3


def test_key_and_url_from_the_environment(monkeypatch):
    with FakeEndpoint() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        model = create_model("openai:env-model")
        texts = [g.text for g in model.generate([_request(), _request()])]  # two in parallel
    assert texts == ["There are 3 stars."] * 2
    assert {r["headers"]["Authorization"] for r in server.requests} == {f"Bearer {KEY}"}
    assert model.describe()["base_url"] == server.base_url and model.describe()["authenticated"] is True


def test_runner_through_the_endpoint_keeps_the_key_out_of_run_files(world, tmp_path):
    paths, index = world
    bench = tmp_path / "bench"
    b = MimicDemo(config_name="counting_balanced", annotations=str(paths.annotations),
                  images_dir=str(paths.images), num_samples=3)
    b._index = index
    materialize(b, bench, progress=False)
    write_dataset_card(bench, pretty_name="t", summary="t")
    with FakeEndpoint(statuses=[503]) as server:
        results = run_eval(EvalSettings(
            data=str(bench), model="openai:my-vlm", out=str(tmp_path / "run"), batch_size=2, progress=False,
            cache_dir=str(tmp_path / "cache"),
            model_options={"base_url": server.base_url, "api_key": KEY, "retry_backoff_s": 0.0},
        ))
    assert len(server.requests) == 4  # 3 samples + 1 retry
    counts = sorted(len(r["body"]["messages"][0]["content"]) - 1 for r in server.requests)
    assert counts[-3:] == [7, 7, 7]  # counting_balanced: 7 images per sample
    assert results["configs"]["counting_balanced"]["n"] == 3
    for name in ("run.json", "predictions.jsonl", "results.json"):
        assert KEY not in (tmp_path / "run" / name).read_text()
