"""Wall time of one transformers inference (one ``judge`` call) against the batch size.

    python bench/hf_latency.py [--out bench/results/hf-latency.json] [--repeats 5]

Builds a tiny random causal LM (Llama layout: d_model 256, 4 layers, a byte-level BPE of about
1000 tokens trained here on random words; nothing is downloaded), judges PRP prompts of about 250
tokens over random passages at batch sizes 1, 2, 4, 8, 16, and prints the mean seconds per call.
Every timed call is written to ``--out`` as {"backend", "batch_size", "prompts", "prompt_tokens",
"seconds"}. The first call of each batch size is a warm-up and is not recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from prp.oracles.hf import TransformersBackend
from prp.prompts import PRP_TEMPLATE
from prp.types import Prompt

BACKEND = "transformers-tiny"
SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "de", "po", "gra", "tel", "mon", "shi", "ber")


def random_text(rng: random.Random, words: int) -> str:
    return " ".join("".join(rng.choices(SYLLABLES, k=rng.randint(1, 3))) for _ in range(words))


def tiny_tokenizer(rng: random.Random) -> transformers.PreTrainedTokenizerFast:
    corpus = [random_text(rng, 60) for _ in range(400)]
    corpus += [PRP_TEMPLATE.render("q", "a", "b") + " Passage A Passage B"] * 50
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=1000, special_tokens=["<pad>", "<eos>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def tiny_backend(seed: int) -> TransformersBackend:
    tok = tiny_tokenizer(random.Random(seed))
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=len(tok), hidden_size=256, intermediate_size=768, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)
    model = transformers.LlamaForCausalLM(config)
    return TransformersBackend(model, tok, model_id=BACKEND, passage_tokens=100, query_tokens=16)


def make_prompts(rng: random.Random, n: int) -> list[Prompt]:
    return [Prompt("q", random_text(rng, 8), f"a{i}", random_text(rng, 120), f"b{i}", random_text(rng, 120))
            for i in range(n)]


async def measure(backend: TransformersBackend, sizes: list[int], repeats: int, seed: int) -> list[dict]:
    rng, records = random.Random(seed + 1), []
    for size in sizes:
        await backend.judge(make_prompts(rng, size))  # warm-up
        for _ in range(repeats):
            batch = make_prompts(rng, size)
            start = time.perf_counter()
            result = await backend.judge(batch)
            seconds = time.perf_counter() - start
            records.append({"backend": BACKEND, "batch_size": size, "prompts": len(batch),
                            "prompt_tokens": result.prompt_tokens, "seconds": round(seconds, 6)})
    return records


def table(records: list[dict]) -> str:
    lines = [f"{'B':>3} {'prompts/call':>12} {'tokens/call':>11} {'s/call':>8} {'s/prompt':>9} {'calls':>5}"]
    for size in sorted({r["batch_size"] for r in records}):
        rows = [r for r in records if r["batch_size"] == size]
        seconds = statistics.mean(r["seconds"] for r in rows)
        prompts = statistics.mean(r["prompts"] for r in rows)
        tokens = statistics.mean(r["prompt_tokens"] for r in rows)
        lines.append(f"{size:>3} {prompts:>12.0f} {tokens:>11.0f} {seconds:>8.4f} "
                     f"{seconds / prompts:>9.4f} {len(rows):>5}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/hf-latency.json"))
    parser.add_argument("--batch-sizes", default="1,2,4,8,16")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    backend = tiny_backend(args.seed)
    params = sum(p.numel() for p in backend.model.parameters())
    print(f"{BACKEND}: {params / 1e6:.1f}M parameters, vocab {len(backend.hf_tokenizer)}, "
          f"torch {torch.__version__} on {backend.device} with {torch.get_num_threads()} threads")
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    records = asyncio.run(measure(backend, sizes, args.repeats, args.seed))
    print(table(records))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"wrote {len(records)} measurements to {args.out}")


if __name__ == "__main__":
    main()
