"""Memory a judge needs to train and to sample, from the engines' own formulas (no GPU needed).

Training (model states only: weights, gradients, Adam moments; activations come on top and
grow with batch x sequence length):

* one GPU or DDP: 16 bytes per parameter (ZeRO paper, Rajbhandari et al. 2020, section 3.1:
  2 + 2 + K with K = 12 for mixed-precision Adam; srjudge keeps float32 weights and autocasts to
  bf16, which is the same 4 + 4 + 8 bytes);
* DeepSpeed ZeRO-2 / ZeRO-3 on N GPUs, no offload: DeepSpeed's own estimators
  ``estimate_zero2_model_states_mem_needs`` (deepspeed/runtime/zero/stage_1_and_2.py:
  2P + 18P/N) and ``estimate_zero3_model_states_mem_needs`` (deepspeed/runtime/zero/stage3.py:
  4 x largest layer + 18P/N), read at DeepSpeed commit edaa722; FSDP full sharding keeps the
  same states sharded, so ZeRO-3's figure stands for it too;
* LoRA (one GPU): the frozen float32 base, 4 bytes per parameter, plus the adapters.

Sampling with vLLM: bf16 weights, 2 bytes per parameter, split over ``tensor_parallel_size``
GPUs; the KV cache takes 2 (K, V) x layers x KV heads x head size x 2 bytes per token.

    python bench/memory.py            # writes bench/results/memory.md
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

GIB = 1024**3


@dataclass(frozen=True)
class Llama:
    """A Llama-style decoder described by its config.json dimensions."""

    name: str
    vocab: int
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    tied: bool

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def params(self) -> int:
        kv = self.kv_heads * self.head_dim
        attention = 2 * self.hidden * self.hidden + 2 * self.hidden * kv
        layer = attention + 3 * self.hidden * self.intermediate + 2 * self.hidden
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return embeddings + self.layers * layer + self.hidden

    @property
    def largest_layer(self) -> int:
        return self.vocab * self.hidden  # the embedding matrix

    @property
    def kv_bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * 2


MODELS = (
    Llama("SmolLM2-135M (tested here)", 49152, 576, 30, 1536, 9, 3, True),
    Llama("Llama-3.2-1B", 128256, 2048, 16, 8192, 32, 8, True),
    Llama("Llama-3.1-8B (the paper's size)", 128256, 4096, 32, 14336, 32, 8, False),
    Llama("Llama-3.1-70B", 128256, 8192, 80, 28672, 64, 8, False),
)


def zero2_gpu(params: int, gpus: int) -> float:
    return 2 * params + 18 * params / gpus


def zero3_gpu(params: int, largest_layer: int, gpus: int) -> float:
    return 4 * largest_layer + 18 * params / gpus


def table() -> str:
    head = ("| model | params | 1 GPU / DDP (full) | 1 GPU LoRA | ZeRO-2 x8 | ZeRO-3 x8 | "
            "ZeRO-3 x16 (2 nodes) | vLLM bf16 weights | KV cache per token |")  # fmt: skip
    rows = [head, "|" + "---|" * 9]
    for m in MODELS:
        p = m.params
        cells = [
            m.name,
            f"{p / 1e9:.2f} B",
            f"{16 * p / GIB:.1f} GiB",
            f"{4 * p / GIB:.1f} GiB",
            f"{zero2_gpu(p, 8) / GIB:.1f} GiB",
            f"{zero3_gpu(p, m.largest_layer, 8) / GIB:.1f} GiB",
            f"{zero3_gpu(p, m.largest_layer, 16) / GIB:.1f} GiB",
            f"{2 * p / GIB:.1f} GiB",
            f"{m.kv_bytes_per_token / 1024:.0f} KiB",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    text = (
        "# Memory per GPU for model states (bench/memory.py)\n\n"
        "Weights + gradients + Adam moments per GPU; activations are extra. Formulas and "
        "sources: the docstring of bench/memory.py.\n\n" + table() + "\n"
    )
    out = Path(__file__).parent / "results" / "memory.md"
    out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
