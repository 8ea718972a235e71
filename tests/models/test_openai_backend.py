"""The openai backend against a small OpenAI-compatible server started on 127.0.0.1 inside the test.

The server "generates" a fixed completion per prompt with the tiny tokenizer and applies stop strings,
max_tokens and EOS itself, in one of two dialects: ``vllm`` (token-id prompts, ``token_ids`` and
``stop_reason`` in the answer, stop strings kept) and ``plain`` (text prompts only, stop strings dropped
from the text but named in ``stop_reason``, no token ids). It can fail its first requests with 503 and records concurrency.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.models import BackendError, GenerationRequest, SamplingParams, load_backend

COMPLETION = "x = 5\n```python\nprint(5)\n```\n```output"


class FakeServer:
    def __init__(self, tokenizer, dialect: str, failures: int = 0, delay_s: float = 0.0):
        self.tokenizer, self.dialect, self.failures, self.delay_s = tokenizer, dialect, failures, delay_s
        self.in_flight = self.max_in_flight = self.requests = 0
        self.payloads: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, answer = server.answer(self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                # vLLM lists the served model with its context; a plain server knows no /models.
                found = self.path == "/v1/models" and server.dialect == "vllm"
                data = json.dumps({"data": [{"id": "tiny", "max_model_len": 321}]} if found else {"error": self.path}).encode()
                self.send_response(200 if found else 404)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, path: str, body: dict) -> tuple[int, dict]:
        with self.lock:
            self.requests += 1
            self.payloads.append(body)
            if self.requests <= self.failures:
                return 503, {"error": "warming up"}
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay_s)
            if path != "/v1/completions":
                return 404, {"error": path}
            if isinstance(body["prompt"], list) and self.dialect == "plain":
                return 400, {"error": "prompt must be a string"}
            return 200, {"choices": [self.complete(body)]}
        finally:
            with self.lock:
                self.in_flight -= 1

    def complete(self, body: dict) -> dict:
        eos = self.tokenizer.eos_token_id
        ids = self.tokenizer.encode(COMPLETION, add_special_tokens=False) + [eos]
        ids = ids[: body["max_tokens"]]
        finish, stop_reason = ("stop", None) if ids[-1] == eos else ("length", None)
        for n in range(1, len(ids) + 1):
            text = self.tokenizer.decode(ids[:n])
            hit = [s for s in body.get("stop") or [] if s in text]
            if hit:
                ids, finish, stop_reason = ids[:n], "stop", hit[0]
                break
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        if self.dialect == "plain":
            text = text[: text.find(stop_reason)] if stop_reason else text
            return {"text": text, "finish_reason": finish, "stop_reason": stop_reason}
        return {"text": text, "finish_reason": finish, "stop_reason": stop_reason, "token_ids": ids}

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def tokenizer_dir(tiny_model_dirs):
    return tiny_model_dirs["llama"]


@pytest.fixture
def serve(tokenizer_dir):
    from transformers import AutoTokenizer

    started = []

    def start(dialect, **kwargs):
        started.append(FakeServer(AutoTokenizer.from_pretrained(tokenizer_dir), dialect, **kwargs))
        return started[-1]

    yield start
    for server in started:
        server.close()


def backend_for(server, tokenizer_dir, **args):
    return load_backend(f"openai:tiny@{server.url}", {"tokenizer": tokenizer_dir, "backoff_s": "0.01", **args})


@pytest.mark.parametrize("dialect", ["vllm", "plain"])
def test_stop_eos_and_length_in_both_dialects(serve, tokenizer_dir, dialect):
    server = serve(dialect)
    backend = backend_for(server, tokenizer_dir)
    prompt = [GenerationRequest(backend.encode("Let x be"))]
    stopped = backend.generate(prompt, SamplingParams(stop=["```output"]))[0]
    assert (stopped.finish_reason, stopped.stop_string) == ("stop", "```output")
    assert stopped.text.endswith("```output") and stopped.text == backend.decode(stopped.token_ids)
    ended = backend.generate(prompt, SamplingParams(stop=[]))[0]
    assert ended.finish_reason == "eos" and ended.token_ids[-1] == backend.tokenizer.eos_token_id
    assert ended.text == COMPLETION
    cut = backend.generate(prompt, SamplingParams(max_new_tokens=3, stop=[]))[0]
    assert cut.finish_reason == "length"
    if dialect == "vllm":
        assert len(cut.token_ids) == 3 and isinstance(server.payloads[0]["prompt"], list)
    else:
        # The first token-id prompt was refused; every later request went as text.
        assert isinstance(server.payloads[0]["prompt"], list)
        assert all(isinstance(p["prompt"], str) for p in server.payloads[1:])


def test_concurrency_limit_and_seeds(serve, tokenizer_dir):
    server = serve("vllm", delay_s=0.05)
    backend = backend_for(server, tokenizer_dir, concurrency="3")
    requests = [GenerationRequest(backend.encode(f"question {i}"), seed=100 + i) for i in range(9)]
    results = backend.generate(requests, SamplingParams(temperature=0.8, stop=[]))
    assert len(results) == 9 and server.max_in_flight == 3
    assert sorted(p["seed"] for p in server.payloads) == list(range(100, 109))
    assert [p["prompt"] for p in server.payloads].count(requests[0].prompt_ids) == 1


def test_retries_then_succeeds_or_gives_up(serve, tokenizer_dir):
    server = serve("vllm", failures=2)
    backend = backend_for(server, tokenizer_dir, max_retries="2")
    assert backend.generate([GenerationRequest([5, 6])], SamplingParams(stop=[]))[0].finish_reason == "eos"
    assert server.requests == 3
    stubborn = serve("vllm", failures=10)
    with pytest.raises(BackendError, match="failed after 2 attempts .*503"):
        backend_for(stubborn, tokenizer_dir, max_retries="1").generate([GenerationRequest([5])], SamplingParams())


def test_unreachable_server_and_bad_specs(tokenizer_dir):
    with pytest.raises(BackendError, match="failed after 1 attempts"):
        load_backend("openai:m@http://127.0.0.1:9/v1", {"tokenizer": tokenizer_dir, "max_retries": 0}).generate(
            [GenerationRequest([1])], SamplingParams()
        )
    with pytest.raises(BackendError, match="MODEL@BASE_URL"):
        load_backend("openai:just-a-model", {"tokenizer": tokenizer_dir})
    with pytest.raises(BackendError, match="needs model_args tokenizer"):
        load_backend("openai:m@http://127.0.0.1:9/v1")


def test_context_length_from_model_args_or_the_servers_model_list(serve, tokenizer_dir):
    assert backend_for(serve("vllm"), tokenizer_dir).context_length == 321
    assert backend_for(serve("plain"), tokenizer_dir).context_length is None
    assert backend_for(serve("vllm"), tokenizer_dir, max_model_len="77").context_length == 77
