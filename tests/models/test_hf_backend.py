"""The hf backend on tiny random models: batching, both decode engines, stopping rules, seeds."""

from __future__ import annotations

import pytest

from harness.models import BackendError, GenerationRequest, SamplingParams, load_backend

PROMPTS = [
    "Let x be",
    "We compute 12 * 7 = 84 and 84 / 4 = 21. Therefore",
    "```python\nprint(2 + 3)\n```\n",
    "Solve",
    "The sum of the first n odd numbers is n^2. So for n = 7 the sum is",
]


def requests_for(backend, prompts=PROMPTS, seeds=None):
    seeds = seeds or [None] * len(prompts)
    return [GenerationRequest(backend.encode(p), seed=s) for p, s in zip(prompts, seeds)]


def ids(generations):
    return [g.token_ids for g in generations]


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def backend(request, tiny_model_dirs):
    return load_backend(f"hf:{tiny_model_dirs[request.param]}", model_args={"device": "cpu", "batch_size": "2"})


def with_engine(backend, engine):
    backend.engine = engine
    return backend


GREEDY = SamplingParams(max_new_tokens=12, stop=[])


@pytest.mark.parametrize("engine", ["simple", "slots"])
def test_batched_greedy_equals_one_at_a_time(backend, engine):
    with_engine(backend, engine)
    batched = backend.generate(requests_for(backend), GREEDY)
    alone = [backend.generate([r], GREEDY)[0] for r in requests_for(backend)]
    assert ids(batched) == ids(alone)
    # Distinct prompts should give distinct continuations, or the comparison above proves little.
    assert len({tuple(g) for g in ids(batched)}) == len(PROMPTS)


def test_slot_engine_matches_simple_engine_greedy(backend):
    # batch_size 2 with 5 requests: slots are refilled as requests finish, at different lengths.
    params = SamplingParams(max_new_tokens=10, stop=["\n"])
    simple = with_engine(backend, "simple").generate(requests_for(backend), params)
    slots = with_engine(backend, "slots").generate(requests_for(backend), params)
    assert ids(simple) == ids(slots)
    assert [g.finish_reason for g in simple] == [g.finish_reason for g in slots]


@pytest.mark.parametrize("engine", ["simple", "slots"])
def test_max_new_tokens_gives_length(backend, engine):
    generations = with_engine(backend, engine).generate(requests_for(backend), SamplingParams(max_new_tokens=7, stop=[], ignore_eos=True))
    assert all(g.finish_reason == "length" and len(g.token_ids) == 7 for g in generations)
    assert all(g.text == backend.decode(g.token_ids) for g in generations)


@pytest.mark.parametrize("engine", ["simple", "slots"])
def test_eos_ends_the_sequence_and_stays_in_the_tokens(backend, engine):
    with_engine(backend, engine)
    request = requests_for(backend)[1]
    free_run = backend.generate([request], SamplingParams(max_new_tokens=12, stop=[], ignore_eos=True))[0].token_ids
    cut = 4
    saved = backend.eos_token_ids
    backend.eos_token_ids = {free_run[cut]}
    try:
        generation = backend.generate([request], SamplingParams(max_new_tokens=12, stop=[]))[0]
        ignored = backend.generate([request], SamplingParams(max_new_tokens=12, stop=[], ignore_eos=True))[0]
    finally:
        backend.eos_token_ids = saved
    first = free_run.index(free_run[cut])
    assert generation.finish_reason == "eos"
    assert generation.token_ids == free_run[: first + 1]
    assert generation.text == backend.decode(free_run[:first])
    assert ignored.token_ids == free_run


@pytest.mark.parametrize("engine", ["simple", "slots"])
def test_stop_string_ends_at_the_completing_token(backend, engine):
    with_engine(backend, engine)
    free_runs = backend.generate(requests_for(backend), SamplingParams(max_new_tokens=16, stop=[], ignore_eos=True))
    # A stop string taken from the middle of one output (three characters, none of them a garbled byte).
    text = backend.decode(free_runs[1].token_ids)
    start = next(i for i in range(4, len(text) - 3) if "\ufffd" not in text[i : i + 3])
    stop = text[start : start + 3]
    stopped = backend.generate(requests_for(backend), SamplingParams(max_new_tokens=16, stop=["never seen", stop], ignore_eos=True))
    for free, got in zip(free_runs, stopped):
        prefix_lengths = [n for n in range(1, 17) if stop in backend.decode(free.token_ids[:n])]
        if prefix_lengths:
            assert got.finish_reason == "stop" and got.stop_string == stop
            assert got.token_ids == free.token_ids[: prefix_lengths[0]]
            assert stop in got.text and got.text == backend.decode(got.token_ids)
        else:
            assert got.finish_reason == "length" and got.token_ids == free.token_ids
    assert stopped[1].finish_reason == "stop"


SAMPLED = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=10, stop=[])


@pytest.mark.parametrize("engine", ["simple", "slots"])
def test_sampling_depends_on_request_seed_not_batch(backend, engine):
    with_engine(backend, engine)
    seeds = [11, 22, 33, 44, 55]
    batch = backend.generate(requests_for(backend, seeds=seeds), SAMPLED)
    reversed_batch = backend.generate(requests_for(backend, PROMPTS[::-1], seeds[::-1]), SAMPLED)[::-1]
    alone = backend.generate(requests_for(backend, PROMPTS[2:3], seeds[2:3]), SAMPLED)[0]
    assert ids(batch) == ids(reversed_batch)
    assert batch[2].token_ids == alone.token_ids
    reseeded = backend.generate(requests_for(backend, seeds=[s + 1 for s in seeds]), SAMPLED)
    assert ids(reseeded) != ids(batch)


def test_sampling_is_identical_across_engines(backend):
    seeds = [5, 6, 7, 8, 9]
    simple = with_engine(backend, "simple").generate(requests_for(backend, seeds=seeds), SAMPLED)
    slots = with_engine(backend, "slots").generate(requests_for(backend, seeds=seeds), SAMPLED)
    assert ids(simple) == ids(slots)


def test_resumed_generation_reproduces_a_sampled_run(backend):
    # Generating 10 tokens, or 4 and then 6 more from the saved prefix, gives the same tokens.
    with_engine(backend, "simple")
    prompt = backend.encode(PROMPTS[0])
    whole = backend.generate([GenerationRequest(prompt, seed=3)], SAMPLED)[0].token_ids
    first = backend.generate([GenerationRequest(prompt, seed=3)],
                             SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=4, stop=[]))[0].token_ids
    rest = backend.generate([GenerationRequest(prompt + first, seed=3)],
                            SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=6, stop=[]))[0].token_ids
    assert first + rest == whole


def test_tiny_top_p_is_greedy(backend):
    greedy = with_engine(backend, "simple").generate(requests_for(backend), GREEDY)
    nucleus_of_one = backend.generate(requests_for(backend), SamplingParams(temperature=0.7, top_p=1e-6, max_new_tokens=12, stop=[]))
    assert ids(greedy) == ids(nucleus_of_one)


def test_chat_prompt_encode_decode(backend):
    prompt = backend.chat_prompt([{"role": "user", "content": "What is 2+3?"}])
    assert prompt == "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n"
    encoded = backend.encode("```output\n5\n```\n")
    assert backend.decode(encoded) == "```output\n5\n```\n"
    assert backend.name.startswith("tiny-")


def test_plain_chat_prompt_without_template(tiny_model_dirs):
    backend = load_backend(f"hf:{tiny_model_dirs['llama']}", model_args={"device": "cpu"})
    backend.tokenizer.chat_template = None
    prompt = backend.chat_prompt([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert prompt == "System: Be brief.\n\nUser: Hi\n\nAssistant:"


def test_errors_are_one_line_backend_errors(tiny_model_dirs, tmp_path):
    cases = [
        ("hf:/no/such/model", {}, "model path not found"),
        ("hf:" + tiny_model_dirs["llama"], {"bogus": 1}, "unknown model_args key 'bogus'"),
        ("hf:" + tiny_model_dirs["llama"], {"batch_size": "many"}, "not a valid int"),
        ("hf:" + tiny_model_dirs["llama"], {"dtype": "float8"}, "unknown dtype"),
        ("hf:" + str(tmp_path), {}, "could not load hf model"),
    ]
    for spec, args, message in cases:
        with pytest.raises(BackendError, match=message) as error:
            load_backend(spec, args)
        assert "\n" not in str(error.value)


def test_empty_prompt_is_rejected(backend):
    with pytest.raises(ValueError, match="at least one prompt token"):
        backend.generate([GenerationRequest([])], GREEDY)


@pytest.mark.parametrize("engine", ["simple", "slots"])
def test_one_token_requests_never_enter_the_decode_loop(backend, engine):
    generations = with_engine(backend, engine).generate(requests_for(backend), SamplingParams(max_new_tokens=1, stop=[], ignore_eos=True))
    greedy = with_engine(backend, "simple").generate(requests_for(backend), GREEDY)
    assert [g.token_ids for g in generations] == [g.token_ids[:1] for g in greedy]
    assert all(g.finish_reason == "length" for g in generations)
