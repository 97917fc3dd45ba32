"""VLLMBackend: a clear error without vLLM, our use of its API against a stand-in module, and a
real run that skips unless vLLM (and so a GPU machine) is present."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import pytest

from srjudge import cli
from srjudge.judging.backends import SamplingParams, load_backend
from srjudge.records import Message

PROMPT = [Message("system", "You judge."), Message("user", "Rate this.")]


def test_missing_vllm_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes "import vllm" raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'srjudge\[vllm\]'.*GPU"):
        load_backend("vllm", "tiny-random")


def test_cli_reports_missing_vllm(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "vllm", None)
    src = tmp_path / "in.jsonl"
    src.write_text("")
    rc = cli.main(["judge", "--backend", "vllm", "--model", "m", "--input", str(src),
                   "--output", str(tmp_path / "out.jsonl")])  # fmt: skip
    assert rc == 2
    assert "pip install 'srjudge[vllm]'" in capsys.readouterr().err


@dataclass
class _Completion:
    index: int
    text: str


class _FakeLLM:
    """Records what VLLMBackend passes; answers like ``LLM.chat`` (one RequestOutput each)."""

    instances: list[_FakeLLM] = []

    def __init__(self, model, **options):
        self.model, self.options, self.calls = model, options, []
        _FakeLLM.instances.append(self)

    def get_tokenizer(self):
        return types.SimpleNamespace(all_special_tokens=["<|im_end|>"], added_tokens_decoder={})

    def chat(self, messages, sampling_params=None, use_tqdm=True):
        self.calls.append((messages, sampling_params, use_tqdm))
        n = sampling_params.n
        return [
            types.SimpleNamespace(outputs=[_Completion(i, f"{k}.{i}") for i in reversed(range(n))])
            for k in range(len(messages))
        ]


def _fake_vllm() -> types.ModuleType:
    module = types.ModuleType("vllm")
    module.LLM = _FakeLLM
    module.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)
    return module


def test_generate_uses_llm_chat(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "vllm", _fake_vllm())
    backend = load_backend("vllm", str(tmp_path), gpu_memory_utilization=0.5)
    llm = _FakeLLM.instances[-1]
    assert llm.model == str(tmp_path) and llm.options == {"gpu_memory_utilization": 0.5}
    assert backend.name == f"vllm:{tmp_path}"

    params = SamplingParams(n=3, temperature=0.8, top_p=0.9, max_new_tokens=32, seed=4)
    out = backend.generate([PROMPT, PROMPT[1:]], params)
    assert out == [["0.0", "0.1", "0.2"], ["1.0", "1.1", "1.2"]]
    messages, sampling, use_tqdm = llm.calls[-1]
    assert messages[0] == [
        {"role": "system", "content": "You judge."},
        {"role": "user", "content": "Rate this."},
    ]
    assert vars(sampling) == {"n": 3, "temperature": 0.8, "top_p": 0.9, "max_tokens": 32, "seed": 4}
    assert use_tqdm is False


def test_greedy_asks_once_and_repeats(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "vllm", _fake_vllm())
    backend = load_backend("vllm", str(tmp_path))
    assert backend.generate([PROMPT], SamplingParams(n=2, temperature=0)) == [["0.0", "0.0"]]
    assert _FakeLLM.instances[-1].calls[-1][1].n == 1
    assert backend.generate([], SamplingParams()) == []


def test_real_vllm():
    pytest.importorskip("vllm")  # a GPU machine with the extra installed
    backend = load_backend("vllm", "tiny-random", gpu_memory_utilization=0.2, max_model_len=2048)
    out = backend.generate([PROMPT], SamplingParams(n=2, temperature=1.0, max_new_tokens=8))
    assert len(out) == 1 and len(out[0]) == 2 and all(isinstance(t, str) for t in out[0])
