"""The set and list prompts and the reading of their answers (prp.shape_text's rules)."""

from __future__ import annotations

import dataclasses
import hashlib
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prp.shape_text import (
    LIST_TEMPLATE,
    MAX_SET,
    SET_LABELS,
    SET_TEMPLATE,
    ShapeAnswer,
    answer_text,
    input_tokens,
    list_answer,
    list_messages,
    list_prompt,
    output_tokens,
    parse_list,
    parse_set,
    set_from_logprobs,
    set_messages,
    set_prompt,
    template_tokens,
)

# -- templates --------------------------------------------------------------------------------


def test_template_ids_are_pinned_and_hash_every_field():
    assert (SET_TEMPLATE.id, LIST_TEMPLATE.id) == ("set-v1-946f6917", "list-v1-40d8d3cf")
    for template in (SET_TEMPLATE, LIST_TEMPLATE):
        fields = (template.name, template.shape, template.head, template.item, template.tail,
                  template.labels, template.answer_prefix)
        digest = hashlib.sha256("\x1f".join(fields).encode()).hexdigest()[:8]
        assert template.id == f"{template.name}-{digest}"
        for field in ("head", "item", "tail", "answer_prefix"):
            changed = dataclasses.replace(template, **{field: getattr(template, field) + " "})
            assert changed.id != template.id, field


def test_set_prompt_shows_lettered_passages_in_order_and_ends_with_the_answer_prefix():
    text = set_prompt("what is x", ["first", "second", "third"])
    assert text == ('Given a query "what is x", which of the following 3 passages is the most relevant '
                    'to the query?\n\nPassage A: "first"\n\nPassage B: "second"\n\nPassage C: "third"\n\n'
                    "Output the label of the most relevant passage, one of Passage A to Passage C: Passage")
    assert set_prompt("q", ["third", "first"]) != set_prompt("q", ["first", "third"])  # order shown matters


def test_list_prompt_shows_numbered_passages_and_has_no_answer_prefix():
    text = list_prompt("q", ["a", "b"])
    assert text.startswith('Given a query "q", order the following 2 passages')
    assert '\n\n[1] "a"\n\n[2] "b"\n\n' in text
    assert text.endswith('joined by " > " (for example [2] > [1] > ...), and nothing else:')


def test_chat_and_message_forms():
    wrap = lambda s: f"<user>{s}</user><assistant>"  # noqa: E731 - a chat template
    passages = ["a", "b", "c"]
    assert set_prompt("q", passages, chat=wrap) == wrap(SET_TEMPLATE.instruction("q", passages)) + "Passage"
    assert list_prompt("q", passages, chat=wrap) == wrap(LIST_TEMPLATE.instruction("q", passages))
    for messages, template in ((set_messages, SET_TEMPLATE), (list_messages, LIST_TEMPLATE)):
        assert messages("q", passages) == [{"role": "user", "content": template.instruction("q", passages)}]


def test_texts_are_filled_verbatim_and_inputs_left_alone():
    passages = ["{query} {n}", 'say "hi"']
    before = list(passages)
    text = set_prompt("{last}", passages)
    assert 'Passage A: "{query} {n}"' in text and 'a query "{last}"' in text
    assert passages == before
    assert set_prompt("q", tuple(passages)) == set_prompt("{last}", passages).replace('"{last}"', '"q"', 1)


@pytest.mark.parametrize(("call", "error", "words"), [
    (lambda: set_prompt("q", ["a"]), ValueError, "between 2 and 26 passages; passages: 1"),
    (lambda: set_prompt("q", ["a"] * 27), ValueError, "passages: 27"),
    (lambda: list_prompt("q", ["a"]), ValueError, "at least 2 passages; passages: 1"),
    (lambda: list_prompt("q", "ab"), TypeError, "passages must be a sequence"),
    (lambda: set_prompt("q", ["a", 3]), TypeError, "passages[1] must be a string"),
    (lambda: set_prompt(None, ["a", "b"]), TypeError, "query must be a string"),
    (lambda: parse_set("A", 27), ValueError, "k: 27"),
    (lambda: parse_list("[1]", 1), ValueError, "w: 1"),
    (lambda: set_from_logprobs({}, 1), ValueError, "k: 1"),
    (lambda: output_tokens("grid", 3), ValueError, "shape must be"),
    (lambda: input_tokens("pair", "q", ["a", "b", "c"]), ValueError, "a pair shows 2 passages"),
])
def test_wrong_arguments_name_the_field(call, error, words):
    with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]")):
        call()


# -- reading set answers ----------------------------------------------------------------------

SET_ANSWERS = [  # (generated text, k, winner or None)
    (" C", 4, 2),
    ("C", 4, 2),
    (" B.", 4, 1),
    ("Passage D", 4, 3),
    ("**Passage C**", 4, 2),
    ("(B)", 4, 1),
    ("[c]", 4, 2),
    ("passage [b]: it mentions the query", 4, 1),
    (" D\n\nPassage D discusses the topic", 4, 3),
    ("<think>A or C? C looks better.</think>\n\nA", 4, 0),
    ("<THINK>A</THINK>B", 4, 1),
    ("reasoning the template opened</think> C", 4, 2),
    ("The answer is: [b]", 4, 1),
    ("I compared Passage A and Passage C. Answer: C", 4, 2),
    ("C is the most relevant.", 4, 2),
    ("After reading, Passage C is the most relevant; Passage A is not.", 4, 2),
    ("The most relevant passage is Passage B.", 4, 1),
    ("Passage C is best", 4, 2),  # the only passage named
    ("Passage C contains the answer to the query.", 4, 2),
    ("A relevant passage is C", 4, None),  # "A" is an article, and no label is named
    ("Passage A talks about it, Passage C too", 4, None),  # ambiguous
    ("Passage A is less relevant than Passage C", 4, None),
    ("C and D", 4, None),
    ("E", 4, None),  # not shown
    ("Passage E", 4, None),
    ("Z", 26, 25),
    ("<think>C is clearly the one", 4, None),  # unclosed: only reasoning
    ("C <think>but maybe", 4, 2),  # text before an unclosed block is the answer
    ("</think>", 4, None),
    ("", 4, None),
    ("   ", 4, None),
    ("1", 4, None),
    (None, 4, None),
    (3, 4, None),
]


@pytest.mark.parametrize(("text", "k", "winner"), SET_ANSWERS)
def test_parse_set(text, k, winner):
    answer = parse_set(text, k)
    assert answer.value == winner, answer.reason
    assert answer.parsed is (winner is not None)
    assert answer.repaired is False and answer.reason  # a set is never repaired; a reason is given
    assert answer.probs is None


@settings(max_examples=200, deadline=None)
@given(k=st.integers(2, MAX_SET), data=st.data())
def test_any_set_label_parses_back(k, data):
    winner = data.draw(st.integers(0, k - 1))
    label = SET_LABELS[winner]
    form = data.draw(st.sampled_from([" {}", "{}", "Passage {}", "[{}]", "**Passage {}**", "{}.",
                                      "Answer: {}", "The most relevant passage is Passage {}."]))
    think = data.draw(st.sampled_from(["", "<think>Passage A or [B]? Answer: A</think>\n"]))
    answer = parse_set(think + form.format(label), k)
    assert (answer.value, answer.repaired) == (winner, False), answer.reason


# -- reading list answers ---------------------------------------------------------------------

LIST_ANSWERS = [  # (generated text, w, permutation or None, repaired)
    ("[3] > [1] > [2]", 3, (2, 0, 1), False),
    (" [3]>[1]>[2]", 3, (2, 0, 1), False),
    ("[2] > [3] > [1]\n\nExplanation: [2] answers the query, [3] is close.", 3, (1, 2, 0), False),
    ("Here is the ranking: [3] > [1] > [2].", 3, (2, 0, 1), False),
    ("<think>[1] > [2] > [3]? no.</think> [2] > [3] > [1]", 3, (1, 2, 0), False),
    ("Ranking:\n1. [3]\n2. [1]\n3. [2]", 3, (2, 0, 1), False),
    ("[3], [1], [2]", 3, (2, 0, 1), False),
    ("Passage [2] > Passage [1] > Passage [3]", 3, (1, 0, 2), False),
    ("3 > 1 > 2", 3, (2, 0, 1), False),
    ("Passage 2 > Passage 3 > Passage 1", 3, (1, 2, 0), False),
    ("3, 1, 2.", 3, (2, 0, 1), False),
    ('{"ranking": [3, 1, 2]}', 3, (2, 0, 1), False),  # JSON style
    ("[1] first. The order: [3, 1, 2]", 3, (2, 0, 1), False),  # the longest chain
    ("[1, 2, 3, 4] > [1, 2, 3, 4] > [] > []", 4, (0, 1, 2, 3), False),  # a 0.5B judge's answer
    ("[] > [] > []", 3, None, False),  # an empty pattern copied
    ("[10] > [2] > [1]", 10, (9, 1, 0, 2, 3, 4, 5, 6, 7, 8), True),
    ("[3] > [3] > [1]", 3, (2, 0, 1), True),  # repeated: first place kept, missing appended
    ("[3] > [1] > [3] > [2]", 3, (2, 0, 1), True),
    ("[4] > [2] > [1] > [3]", 3, (1, 0, 2), True),  # out of range dropped
    ("[0] > [2] > [1] > [3]", 3, (1, 0, 2), True),
    ("[2]", 3, (1, 0, 2), True),
    ("[3] is the best, then [1]", 3, (2, 0, 1), True),  # separate chains: the first of equals
    ("[3] > [1] > [2] > [9] > [9]", 3, (2, 0, 1), True),
    ("[7] > [8]", 3, None, False),  # nothing in range
    ("3", 3, (2, 0, 1), True),  # the whole answer is numbers: the rest appended
    ("Passage 3 is best", 3, None, False),  # a lone bare number in prose is not a list
    ("I would rank passage 3 first", 3, None, False),
    ("nothing useful", 3, None, False),
    ("<think>[3] > [1] > [2]", 3, None, False),  # unclosed reasoning only
    ("[3] > [1] </think>", 3, None, False),  # nothing after the reasoning
    ("", 3, None, False),
    (None, 3, None, False),
]


@pytest.mark.parametrize(("text", "w", "order", "repaired"), LIST_ANSWERS)
def test_parse_list(text, w, order, repaired):
    answer = parse_list(text, w)
    assert answer.value == order, answer.reason
    assert answer.repaired is repaired
    if order is None or repaired:
        assert answer.reason


def test_list_repairs_are_named():
    assert parse_list("[3] > [3] > [9] > [1]", 4).reason == (
        "dropped out-of-range [9]; dropped repeated [3]; appended missing [2] [4]")


_NOISE = st.text(st.characters(blacklist_characters="[]<", blacklist_categories=("Cs",)), max_size=40)
_THOUGHT = st.text(st.characters(blacklist_characters="<", blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(order=st.integers(2, 30).flatmap(lambda w: st.permutations(range(w))), before=_NOISE, after=_NOISE,
       thought=st.none() | _THOUGHT, closed=st.booleans(),
       sep=st.sampled_from([" > ", ">", ", ", "\n", " > Passage ", "number"]))
def test_any_permutation_rendered_with_noise_parses_back(order, before, after, thought, closed, sep):
    if sep == "number":
        chain = "".join(f"\n{n + 1}. [{i + 1}]" for n, i in enumerate(order))
    else:
        chain = sep.join(f"[{i + 1}]" for i in order)
    text = f"{before} {chain} {after}"
    if thought is not None:
        text = (f"<think>{thought} [1] > [2]</think>" if closed else f"{thought}</think>") + text
    assert parse_list(text, len(order)) == (tuple(order), False, "", None)
    assert parse_list(list_answer(order), len(order)).value == tuple(order)


@settings(max_examples=300, deadline=None)
@given(w=st.integers(2, 12), data=st.data())
def test_any_ids_give_a_permutation_repaired_unless_exact(w, data):
    ids = data.draw(st.lists(st.integers(0, w + 3), min_size=1, max_size=2 * w))
    answer = parse_list(" > ".join(f"[{n}]" for n in ids), w)
    kept = list(dict.fromkeys(n - 1 for n in ids if 1 <= n <= w))
    if not kept:
        assert answer == (None, False, f"no identifier between 1 and {w} in the answer", None)
        return
    assert sorted(answer.value) == list(range(w))
    assert list(answer.value[: len(kept)]) == kept  # first places kept, in order
    assert list(answer.value[len(kept):]) == sorted(set(range(w)) - set(kept))  # the rest as shown
    assert answer.repaired is (sorted(ids) != list(range(1, w + 1)) or len(ids) != w)


def test_answer_text_drops_reasoning():
    assert answer_text("<think>x</think>A") == "A"
    assert answer_text("<think>a</think>b<think>c</think>d") == "d"
    assert answer_text("A<think>unfinished") == "A"
    assert answer_text("plain") == "plain"


# -- sets by label log-probabilities ----------------------------------------------------------


def test_set_from_logprobs_normalizes_over_the_labels():
    answer = set_from_logprobs({" A": math.log(0.2), " B": math.log(0.4), " the": math.log(0.3),
                                "B": math.log(0.1)}, 3)
    assert answer.value == 1 and answer.parsed and not answer.repaired
    assert answer.probs == pytest.approx((1 / 3, 2 / 3, 0.0))  # B's best token, C unseen


@pytest.mark.parametrize(("top", "k", "winner"), [
    ({" A": -2.0, " B": -1.0}, 2, 1),
    ([(" A", -2.0), (" C", -0.5)], 3, 2),  # pairs
    ([{"token": "ĠD", "logprob": -0.1}, {"token": "▁A", "logprob": -3.0}], 4, 3),  # BPE space marks
    ({"[C": -0.2, "(A": -1.0, "B]": -2.0, "**D": -3.0}, 4, 2),
    ({" A": -1.0, " B": -1.0}, 2, 0),  # equals: the one shown first
    ({" E": -0.1, " B": -2.0}, 4, 1),  # a label not shown is another token
    ({" a": -0.1, " B": -2.0}, 4, 1),  # lowercase is a word
    ({" A": -math.inf, " B": -5.0}, 2, 1),
    ({" AB": -0.1, "Passage": -0.2, " C": -4.0}, 3, 2),
    ({" A": "nan", " x": -1.0}, 2, None),  # unusable value of a label
    ({" A": float("nan")}, 2, None),
    ({" A": math.inf}, 2, None),
    ({" A": None, " B": -1.0}, 2, None),
    ({" A": True}, 2, None),
    ({" the": -0.1, " x": float("nan")}, 2, None),  # no label (other tokens' values ignored)
    ({" A": -math.inf, " B": -math.inf}, 2, None),
    ({}, 2, None),
    (None, 2, None),
    ("A", 2, None),
    ({1: -0.1}, 2, None),
])
def test_set_from_logprobs(top, k, winner):
    answer = set_from_logprobs(top, k)
    assert answer.value == winner, answer.reason
    if winner is None:
        assert answer.probs is None and answer.reason
    else:
        assert len(answer.probs) == k and math.fsum(answer.probs) == pytest.approx(1.0)
        assert answer.probs[winner] == max(answer.probs)


@settings(max_examples=200, deadline=None)
@given(k=st.integers(2, MAX_SET), data=st.data())
def test_logprob_distribution_is_the_softmax_over_the_labels(k, data):
    scores = data.draw(st.lists(st.floats(-30, 0), min_size=k, max_size=k))
    answer = set_from_logprobs({f" {SET_LABELS[i]}": s for i, s in enumerate(scores)}, k)
    top = max(scores)
    expected = [math.exp(s - top) for s in scores]
    assert answer.probs == pytest.approx([e / sum(expected) for e in expected])
    assert answer.value == scores.index(top)


def test_shape_answer_is_a_small_tuple():
    assert ShapeAnswer(None).parsed is False and ShapeAnswer(0).parsed is True


# -- tokens -----------------------------------------------------------------------------------


class Words:
    """A toy tokenizer: one token per whitespace-separated word."""

    def __init__(self) -> None:
        self.vocab: list[str] = []

    def encode(self, text: str) -> list[int]:
        ids = []
        for word in text.split():
            if word not in self.vocab:
                self.vocab.append(word)
            ids.append(self.vocab.index(word))
        return ids

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.vocab[i] for i in ids)


def test_input_tokens_with_a_tokenizer_count_the_rendered_prompt():
    # head 17 words, 'Passage A: "a b c"' 5, 'Passage B: "d"' 3, tail with the prefix 16 (by hand)
    assert input_tokens("set", "q", ["a b c", "d"], tokenizer=Words()) == 17 + 5 + 3 + 16
    assert input_tokens("set", "q", ["a b c", "d"], tokenizer=Words(), passage_tokens=2) == 17 + 4 + 3 + 16
    counted = input_tokens("set", "q", ["a b c", "d"], tokenizer=lambda text: len(text.split()))
    assert counted == 41  # a counting callable: same count here (texts within budget)
    # the pair prompt: 'Given a query "q", which of the following two passages is more relevant to the
    # query?' 16, 'Passage A: "x"' 3, 'Passage B: "y z"' 4, 'Output Passage A or Passage B: Passage' 7
    assert input_tokens("pair", "q", ["x", "y z"], tokenizer=Words()) == 16 + 3 + 4 + 7
    wrapped = input_tokens("pair", "q", ["x", "y z"], tokenizer=Words(), chat=lambda s: f"<u> {s} </u>")
    assert wrapped == 16 + 3 + 4 + 6 + 2  # "<u>", and "</u>Passage": the prefix follows the template


def test_input_tokens_estimate_is_the_template_plus_each_text_at_4_characters():
    # by hand: head 86 characters, 'Passage A: ""' 13 twice, tail 77, three blank lines 6, " Passage" 8
    assert len(set_prompt("", ["", ""])) == 86 + 2 * 13 + 77 + 6 + 8 == 203
    assert template_tokens("set", 2) == math.ceil(203 / 4) == 51
    assert template_tokens("pair", 2) == 39  # cost.model's TEMPLATE_TOKENS says 40
    # query 9 chars -> 3, passages 40 chars -> 10 and 1000 chars -> 128 (the budget)
    assert input_tokens("set", "q" * 9, ["x" * 40, "y" * 1000]) == 51 + 3 + 10 + 128
    assert input_tokens("set", "q" * 900, ["x", "y"], query_tokens=None) == 51 + 225 + 1 + 1
    assert input_tokens("list", "q", ["x"] * 20) == template_tokens("list", 20) + 1 + 20


def test_output_tokens():
    assert output_tokens("pair", 2) == output_tokens("set", 26) == 1
    assert output_tokens("list", 3) == 3 + 4 + 4  # "[1]", " > [2]", " > [3]"
    assert output_tokens("list", 12) == 3 + 8 * 4 + 3 * 5
    assert output_tokens("list", 3, tokenizer=Words()) == 5  # "[1] > [2] > [3]": five words


def _real_tokenizer(name: str):
    from prp.models import ModelError
    from prp.oracles.tokenizers import local_tokenizer

    try:
        return local_tokenizer(name)
    except (ImportError, ValueError, OSError, ModelError) as exc:
        pytest.skip(f"no {name} tokenizer here: {exc}")


@pytest.mark.parametrize("name", ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
def test_real_tokenizers_read_each_label_as_one_token(name):
    tok = _real_tokenizer(name)
    prompt = set_prompt("q", ["a"] * MAX_SET)
    for label in SET_LABELS:
        assert len(tok.encode(f" {label}")) == 1, label
        assert tok.encode(prompt + f" {label}")[:-1] == tok.encode(prompt)  # the label is the next token
    assert output_tokens("list", 20, tokenizer=tok) == output_tokens("list", 20) == 90
