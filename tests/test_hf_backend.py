"""The transformers backend on tiny random models built here (no download, no weights on disk).

Tokenizers are trained in the test with the ``tokenizers`` library: a byte-level BPE ("ĠA") for
the causal models and a Metaspace BPE ("▁A", appending "</s>" like T5's) for the seq2seq one.
"""

from __future__ import annotations

import asyncio
import copy
import os
import sys
import threading

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a hub
EXTRA = "the transformers backend needs torch and transformers: pip install 'prp[transformers]'"
torch = pytest.importorskip("torch", reason=EXTRA)
transformers = pytest.importorskip("transformers", reason=EXTRA)
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

from prp import Prompt, Reranker  # noqa: E402
from prp.oracles.hf import TransformersBackend  # noqa: E402
from prp.prompts import PRP_TEMPLATE  # noqa: E402
from prp.shape_text import LIST_TEMPLATE, SET_TEMPLATE  # noqa: E402

WORDS = ("ocean tide coral reef salt wave shore storm river delta forest canopy root leaf moss stone "
         "granite quartz volcano lava ash glacier ice snow summit valley meadow prairie desert dune "
         "cactus orbit planet comet star galaxy").split()
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def corpus() -> list[str]:
    instruction = PRP_TEMPLATE.render("what makes a reef", "coral reef", "glacier ice")
    lines = [instruction + " Passage A", instruction + " Passage B", "Passage A. Passage B. A B A B"]
    lines += [SET_TEMPLATE.render("what makes a reef", ["coral", "ice", "sand", "salt"]) + " C D",
              LIST_TEMPLATE.render("what makes a reef", ["coral", "ice", "sand"]) + " [2] > [1] > [3]"]
    lines += [" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))]
    return lines * 5 + [CHAT_TEMPLATE, "<|user|> <|assistant|>"]


def byte_bpe() -> transformers.PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus(), trainers.BpeTrainer(
        vocab_size=700, special_tokens=["<pad>", "<eos>", "<unk>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>",
                                                eos_token="<eos>", unk_token="<unk>")


def t5_like() -> transformers.PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(corpus(), trainers.BpeTrainer(
        vocab_size=500, special_tokens=["<pad>", "</s>", "<unk>"], show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>",
                                                eos_token="</s>", unk_token="<unk>")


def tiny_model(kind: str, seed: int = 0):
    """A random tiny model and its tokenizer: "t5", "llama", "gpt2" or "llama-chat"."""
    tok = t5_like() if kind == "t5" else byte_bpe()
    ids = {"vocab_size": len(tok), "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id}
    torch.manual_seed(seed)
    if kind == "t5":
        config = transformers.T5Config(d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
                                       decoder_start_token_id=tok.pad_token_id, **ids)
        return transformers.T5ForConditionalGeneration(config).eval(), tok
    if kind == "gpt2":
        config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=512,
                                         initializer_range=0.2, bos_token_id=tok.eos_token_id, **ids)
        return transformers.GPT2LMHeadModel(config).eval(), tok
    if kind == "llama-chat":
        tok.chat_template = CHAT_TEMPLATE
    config = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=2, initializer_range=0.2,
                                      max_position_embeddings=512, bos_token_id=tok.eos_token_id, **ids)
    return transformers.LlamaForCausalLM(config).eval(), tok


def backend(kind: str, seed: int = 0, **kwargs) -> TransformersBackend:
    model, tok = tiny_model(kind, seed)
    return TransformersBackend(model, tok, model_id=f"tiny-{kind}", **kwargs)


def prompts() -> list[Prompt]:
    """Prompts of different lengths (so padding matters), both orders of some pairs."""
    texts = [" ".join(WORDS[i: i + n]) for i, n in ((0, 3), (4, 12), (9, 1), (2, 20), (14, 7))]
    pairs = [(0, 1), (1, 0), (2, 3), (3, 4), (4, 2), (0, 3)]
    return [Prompt("q1", "what makes a coral reef" if a % 2 else "reef", f"d{a}", texts[a], f"d{b}", texts[b])
            for a, b in pairs]


def judge(be: TransformersBackend, batch: list[Prompt]):
    return asyncio.run(be.judge(batch))


@pytest.fixture(scope="module", params=["t5", "llama", "gpt2"])
def any_backend(request) -> TransformersBackend:
    return backend(request.param)


def test_batched_judging_equals_one_by_one(any_backend):
    batch = prompts()
    lengths = {len(any_backend.hf_tokenizer.encode(any_backend.model_input(p))) for p in batch}
    assert len(lengths) > 3  # padding is really exercised
    together = judge(any_backend, batch).judgments
    alone = [judge(any_backend, [p]).judgments[0] for p in batch]
    for t, a in zip(together, alone, strict=True):
        assert t.preferred == a.preferred and t.parsed
        assert t.margin == pytest.approx(a.margin, abs=1e-4)
    assert len({round(j.margin, 6) for j in together}) > 1  # the judge tells prompts apart


def test_batch_result_reports_tokens(any_backend):
    batch = prompts()
    result = judge(any_backend, batch)
    hf = any_backend.hf_tokenizer
    expected = sum(len(hf.encode(any_backend.model_input(p))) for p in batch)
    expected += len(any_backend.decoder_prefix) * len(batch)
    assert result.prompt_tokens == expected > 0
    assert result.completion_tokens == len(batch)
    assert judge(any_backend, []).judgments == []


def test_one_forward_pass_per_judge_call_off_the_event_loop(any_backend):
    threads: list[int] = []
    handle = any_backend.model.register_forward_hook(lambda *_: threads.append(threading.get_ident()))
    try:
        judge(any_backend, prompts())
        judge(any_backend, prompts()[:2])
    finally:
        handle.remove()
    assert len(threads) == 2 and threading.get_ident() not in threads


def test_answer_tokens_and_seq2seq_decoder_prefix():
    t5, llama = backend("t5"), backend("llama")
    for be in (t5, llama):
        for side, ids in be.answer_ids.items():
            assert ids and all(be.hf_tokenizer.decode([i]).strip() == side for i in ids)
    assert t5.seq2seq and not llama.seq2seq and llama.decoder_prefix == []
    start, *rest = t5.decoder_prefix
    assert start == t5.model.config.decoder_start_token_id
    assert t5.hf_tokenizer.decode(rest).strip() == "Passage"
    p = prompts()[0]
    assert t5.model_input(p) == t5.instruction(p) and llama.model_input(p) == llama.render(p)


def test_chat_template_path():
    chat = backend("llama-chat")
    assert chat.chat and "chat" in chat.name
    plain = backend("llama-chat", chat=False)
    assert not plain.chat and plain.name.endswith(":plain")
    p = prompts()[1]
    assert plain.render(p) == plain.instruction(p) + " Passage"
    rendered = chat.render(p)
    assert rendered == f"<|user|>\n{chat.instruction(p)}\n<|assistant|>\nPassage" != plain.render(p)
    chat_result, plain_result = judge(chat, prompts()), judge(plain, prompts())
    assert all(j.parsed for j in chat_result.judgments)
    assert [j.margin for j in chat_result.judgments] != [j.margin for j in plain_result.judgments]
    assert backend("llama").chat is False  # no template, no chat


def test_truncation_uses_the_model_tokenizer():
    be = backend("llama", passage_tokens=8, query_tokens=4)
    long = " ".join(WORDS * 2)
    p = Prompt("q", "what makes a coral reef under the sea", "a", long, "b", "reef")
    rendered = be.render(p)
    hf = be.hf_tokenizer
    cut = hf.decode(hf.encode(long, add_special_tokens=False)[:8]).strip()
    assert f'Passage A: "{cut}"' in rendered and long not in rendered
    assert len(hf.encode(cut, add_special_tokens=False)) <= 8
    assert cut != long[: 8 * 4]  # not the 4-characters-a-token estimate


def test_name_holds_kind_model_template_and_budgets():
    be = backend("t5", passage_tokens=100, query_tokens=20)
    assert be.name.startswith("transformers:tiny-t5#")
    assert ":prp-v1:" in be.name and ":p100:q20:" in be.name
    assert be.weights_hash and be.weights_hash == backend("t5", passage_tokens=5).weights_hash
    assert be.weights_hash != backend("t5", seed=1).weights_hash  # other weights, other cache
    model, tok = tiny_model("gpt2")
    assert TransformersBackend(model, tok, weights_hash="abc").name.startswith("transformers:")
    assert TransformersBackend(model, tok, weights_hash="abc").weights_hash == "abc"


def test_deterministic_across_runs():
    first = [j.margin for j in judge(backend("llama"), prompts()).judgments]
    second = [j.margin for j in judge(backend("llama"), prompts()).judgments]
    assert first == second


@pytest.mark.parametrize("kind", ["t5", "llama"])
def test_reranker_ranking_does_not_depend_on_batch_size(kind):
    be = backend(kind)
    docs = [" ".join(WORDS[i: i + 2 + i % 5]) for i in range(0, 30, 3)]
    runs = {}
    for batch_size in (4, 1):
        result = Reranker(be, sorter="quicksort", k=3, batch_size=batch_size).rank("coral reef", docs)
        runs[batch_size] = ([d.doc_id for d in result.top_k()], result.cost.inferences)
    assert runs[4][0] == runs[1][0]
    assert runs[4][1] < runs[1][1]  # batching really happened


@pytest.mark.parametrize("kind", ["t5", "llama"])
def test_loads_a_local_directory_like_a_hub_id(kind, tmp_path):
    model, tok = tiny_model(kind)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded = TransformersBackend(str(tmp_path), dtype="float32")
    in_memory = TransformersBackend(model, tok)
    assert loaded.seq2seq == (kind == "t5") and loaded.model_id == str(tmp_path)
    assert loaded.weights_hash and loaded.weights_hash != in_memory.weights_hash  # hash of the files
    a = [j.margin for j in judge(loaded, prompts()).judgments]
    b = [j.margin for j in judge(in_memory, prompts()).judgments]
    assert a == pytest.approx(b, abs=1e-5)


def test_dtype_string_casts_the_model():
    model, tok = tiny_model("llama")
    be = TransformersBackend(copy.deepcopy(model), tok, dtype="bfloat16")
    assert be.model.dtype == torch.bfloat16
    assert all(j.parsed for j in judge(be, prompts()).judgments)
    assert be.weights_hash != TransformersBackend(model, tok, dtype=torch.float32).weights_hash


def test_bad_arguments_raise_clear_errors():
    model, tok = tiny_model("llama")
    with pytest.raises(ValueError, match="unknown dtype 'int8'.*float32"):
        TransformersBackend(model, tok, dtype="int8")
    with pytest.raises(ValueError, match="unknown dtype"):
        TransformersBackend(model, tok, dtype=torch.int64)
    with pytest.raises(ValueError, match="unusable device 'gpu'"):
        TransformersBackend(model, tok, device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="unusable device 'cuda'"):
            TransformersBackend(model, tok, device="cuda")
    with pytest.raises(ValueError, match="needs its tokenizer"):
        TransformersBackend(model)
    with pytest.raises(TypeError, match="model must be"):
        TransformersBackend(42, tok)
    with pytest.raises(ValueError, match="chat template"):
        TransformersBackend(model, tok, chat=True)
    with pytest.raises(ValueError, match="passage_tokens"):
        TransformersBackend(model, tok, passage_tokens=0)
    bert_config = transformers.BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                                          num_attention_heads=2, intermediate_size=64)
    bert = transformers.BertModel(bert_config)
    with pytest.raises(ValueError, match="neither a seq2seq nor a causal"):
        TransformersBackend(bert, tok)


def test_missing_torch_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'prp\[transformers\]'"):
        TransformersBackend("google/flan-t5-large")


def test_a_checkpoint_that_is_no_language_model_is_refused(tmp_path):
    vit = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    vit.save_pretrained(tmp_path)  # an image encoder: AutoConfig reads it, no LM class takes it
    with pytest.raises(ValueError, match="ViTConfig.*neither a seq2seq nor a causal"):
        TransformersBackend(str(tmp_path))
