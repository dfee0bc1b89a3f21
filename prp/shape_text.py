"""The text of k-wise questions for real judges: the ``set`` and ``list`` prompts, and reading answers.

A pair asks "A or B?" (:mod:`prp.prompts`). Two more shapes ask about several passages at once:

* ``set`` (k passages, 2 <= k <= 26): "which of these k passages is the most relevant?" The
  passages are labelled ``Passage A`` .. ``Passage Z`` and the prompt ends with the answer prefix
  ``Passage``, as the pair prompt does, so the next token is " A", " B", ...: one token per label
  in the tokenizers of common judges (Qwen2.5, Llama, SmolLM2, GPT-2 style BPE all have " A".." Z"
  as single tokens, while a number above 9 is two tokens in the digit-by-digit tokenizers of
  Qwen2.5 and SmolLM2). A set is therefore answered by the label tokens' log-probabilities in one
  forward pass (:func:`set_from_logprobs`), or by generating the label (:func:`parse_set`).
* ``list`` (w passages, w >= 2): "order these w passages", RankGPT style: the passages are
  labelled ``[1]`` .. ``[w]`` and the judge generates the order as ``[3] > [1] > [2]``
  (:func:`parse_list`). Numbers, not letters: a list is generated, so a label may take several
  tokens, and lists are longer than 26.

Passages are shown in the order given (the order is part of the question: the caller's cache key
covers it). Texts are filled in as given: cut them to their budgets first
(:func:`prp.prompts.truncate`), as the pair judges do. Each template has a stable :attr:`ShapeTemplate.id`
(name, version and a hash of its text: change the text, change the id) for cache keys and
judge names. A template is rendered three ways, like the pair template: plain (the instruction,
a space, the answer prefix), through a chat template (``chat(instruction) + answer prefix``, the
callable being a local tokenizer's ``chat``), or as chat messages for a server that applies its
own template (:meth:`ShapeTemplate.messages`; the answer is then generated, not prefilled).

**Reading an answer** (:class:`ShapeAnswer`: ``value``, ``repaired``, ``reason``; ``value`` None
means unparsed: the answer decides nothing, never a silent default). Rules, in order:

1. *Reasoning.* Text up to the last ``</think>`` is reasoning and is dropped (an opening
   ``<think>`` is not required: a chat template may have opened it). Without ``</think>``, an
   opening ``<think>`` starts an unclosed block (the judge ran out of tokens while thinking):
   it and everything after it are dropped. Tags match in any case. What is left is the answer.
   Text that is not a string is unparsed.
2. *Set* (:func:`parse_set`). A label is a capital letter, written bare (``C``), after the word
   passage (``Passage C``) or in brackets (``[C]``; inside brackets or after "passage" any case).
   The winner is, first found: (a) the label the answer starts with (after spaces and
   punctuation such as ``*``, ``"`` or ``(``) unless a lowercase word follows it on its line
   ("A relevant passage...", "Passage A is less relevant..." are sentences); (b) the label of the
   last answer phrase (``answer: C``, ``the answer is Passage C``, ``the most relevant passage is
   C``, ``Passage C is the most relevant``); (c) the one label named as ``Passage X`` or ``[X]``
   when the answer names exactly one. Several different labels named and no answer phrase:
   unparsed (ambiguous). A label beyond the k shown: unparsed. A set answer is never repaired.
3. *List* (:func:`parse_list`). Ids are read from a **chain**: when the answer holds any
   bracketed id ``[n]``, a chain is a run of bracketed ids separated only by spaces, line
   breaks, ``>``, ``,``, ``;``, ``:``, ``|``, ``-``, ``=``, ``→``, ``≻``, a list number (``2.``
   or ``2)``) or the word passage; a list of numbers in one pair of brackets (``[3, 1, 2]``, as
   JSON writes it) is a chain too. Without either, a chain is two or more bare numbers joined by
   ``>`` (each optionally after the word passage), or the whole answer when it holds nothing but
   numbers, spaces, ``>``, ``,`` and ``;``. The longest chain is read (the first of equals);
   other text is ignored. Then, each a **repair** (``repaired`` True, named in ``reason``):
   ids outside 1..w are dropped; a repeated id keeps its first place; ids never named are
   appended in the order shown. No chain, or no id in 1..w: unparsed. The value is the
   permutation of ``range(w)`` (0-based positions in the order shown), best first.
4. *Set by log-probabilities* (:func:`set_from_logprobs`). The top log-probabilities of the
   answer's first token, as a mapping ``token -> logprob``, (token, logprob) pairs or
   ``{"token", "logprob"}`` objects. A token names a label when, stripped of spaces, the BPE
   space marks ``Ġ`` and ``▁``, brackets, parentheses, quotes, ``*``, ``:`` and ``.``, it is one
   of the k capital letters shown; other tokens are ignored. A label's score is the best
   log-probability among its tokens (as for pairs). A label token's value that is not a real
   number (a string, null, a bool), NaN or +inf makes the answer unparsed (the rule of
   :mod:`prp.prompts`); -inf is probability 0. No label seen, or every label at -inf: unparsed.
   Otherwise ``probs`` is the softmax over the k labels' scores (a label not seen has
   probability 0) and the winner its argmax (the label shown first among equals).

**Tokens** (:func:`input_tokens`, :func:`output_tokens`). With a tokenizer (an object with
``encode``/``decode``, e.g. :func:`prp.oracles.tokenizers.local_tokenizer`), query and passages
are cut to their budgets by it and the rendered prompt's tokens are counted; a plain callable
``text -> int`` (or ``-> token ids``) counts the rendered prompt whose texts were cut at 4
characters a token. Without either, the estimate is the template's own text at 4 characters a
token (the prompt rendered with an empty query and empty passages, answer prefix included) plus
each text's estimate cut to its budget: :func:`cost.model.estimate_question_tokens`, the one
estimate every shape and the simulated judges share, given this template's size. An answer needs
one token for a pair or a set (the label), and for a list the tokens of ``[1] > [2] > ... >
[w]``: counted by the tokenizer when given, else 3 + its digits per id, less one (" [", the
digits, "]", " >"; exact for digit-by-digit tokenizers such as Qwen2.5's and SmolLM2's).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, NamedTuple

from cost.model import estimate_question_tokens, estimate_tokens
from prp.prompts import PRP_TEMPLATE, UnusableLogprob, truncate, usable_logprob

Shape = Literal["pair", "set", "list"]

#: The labels of a set's passages, in the order shown.
SET_LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: The most passages a set may show (one capital letter each).
MAX_SET = len(SET_LABELS)


@dataclass(frozen=True)
class ShapeTemplate:
    """A k-wise prompt: ``head``, then one ``item`` per passage, then ``tail``, joined by blank lines.

    ``head`` and ``tail`` may use ``{query}``, ``{n}`` (passages shown) and ``{last}`` (the last
    label); ``item`` uses ``{label}`` and ``{passage}``. ``labels`` is "letters" (A, B, ...) or
    "numbers" (1, 2, ...)."""

    name: str
    shape: Literal["set", "list"]
    head: str
    item: str
    tail: str
    labels: Literal["letters", "numbers"]
    answer_prefix: str = ""

    @property
    def id(self) -> str:
        """``name`` and the first 8 hex digits of a SHA-256 over every field: the cache identity."""
        text = "\x1f".join((self.name, self.shape, self.head, self.item, self.tail, self.labels,
                            self.answer_prefix))
        return f"{self.name}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:8]}"

    def label(self, index: int) -> str:
        """The label of the passage shown at 0-based ``index``."""
        return SET_LABELS[index] if self.labels == "letters" else str(index + 1)

    def instruction(self, query: str, passages: Sequence[str]) -> str:
        """The template filled with ``query`` and ``passages`` (in the order shown)."""
        passages = _check_passages(self.shape, query, passages)
        fields = {"query": query, "n": len(passages), "last": self.label(len(passages) - 1)}
        items = [self.item.format(label=self.label(i), passage=p) for i, p in enumerate(passages)]
        return "\n\n".join([self.head.format(**fields), *items, self.tail.format(**fields)])

    def render(self, query: str, passages: Sequence[str], chat: Callable[[str], str] | None = None) -> str:
        """The model input: ``chat(instruction) + answer_prefix`` with a chat template, else the
        instruction, a space and the answer prefix (the instruction alone if there is none)."""
        instruction = self.instruction(query, passages)
        if chat is not None:
            return chat(instruction) + self.answer_prefix
        return f"{instruction} {self.answer_prefix}" if self.answer_prefix else instruction

    def messages(self, query: str, passages: Sequence[str]) -> list[dict[str, str]]:
        """The chat form for a server that applies its own template: one user message."""
        return [{"role": "user", "content": self.instruction(query, passages)}]


SET_TEMPLATE = ShapeTemplate(
    name="set-v1", shape="set", labels="letters", answer_prefix="Passage",
    head='Given a query "{query}", which of the following {n} passages is the most relevant to the query?',
    item='Passage {label}: "{passage}"',
    tail="Output the label of the most relevant passage, one of Passage A to Passage {last}:",
)

LIST_TEMPLATE = ShapeTemplate(
    name="list-v1", shape="list", labels="numbers",
    head=('Given a query "{query}", order the following {n} passages by their relevance to the '
          "query, the most relevant first."),
    item='[{label}] "{passage}"',
    tail=('Output the identifiers of all {n} passages, the most relevant first, joined by " > " '
          "(for example [2] > [1] > ...), and nothing else:"),
)

#: The template of each k-wise shape, by name.
TEMPLATES: dict[str, ShapeTemplate] = {"set": SET_TEMPLATE, "list": LIST_TEMPLATE}


def _check_passages(shape: str, query: object, passages: object) -> list[str]:
    if not isinstance(query, str):
        raise TypeError(f"query must be a string, got {type(query).__name__}")
    if isinstance(passages, (str, bytes)) or not isinstance(passages, Sequence):
        raise TypeError(f"passages must be a sequence of strings, got {type(passages).__name__}")
    found = list(passages)
    for i, passage in enumerate(found):
        if not isinstance(passage, str):
            raise TypeError(f"passages[{i}] must be a string, got {type(passage).__name__}")
    _check_size(shape, len(found), "passages")
    return found


def _check_size(shape: str, n: object, field: str) -> int:
    top = MAX_SET if shape == "set" else None
    if isinstance(n, bool) or not isinstance(n, int) or n < 2 or (top is not None and n > top):
        where = f"between 2 and {top}" if top else "at least 2"
        shown = n if isinstance(n, int) else type(n).__name__
        raise ValueError(f"a {shape} shows {where} passages; {field}: {shown}")
    return n


def set_prompt(query: str, passages: Sequence[str], chat: Callable[[str], str] | None = None) -> str:
    """The rendered ``set`` prompt (:data:`SET_TEMPLATE`): plain, or through ``chat``."""
    return SET_TEMPLATE.render(query, passages, chat)


def set_messages(query: str, passages: Sequence[str]) -> list[dict[str, str]]:
    """The ``set`` prompt as chat messages."""
    return SET_TEMPLATE.messages(query, passages)


def list_prompt(query: str, passages: Sequence[str], chat: Callable[[str], str] | None = None) -> str:
    """The rendered ``list`` prompt (:data:`LIST_TEMPLATE`): plain, or through ``chat``."""
    return LIST_TEMPLATE.render(query, passages, chat)


def list_messages(query: str, passages: Sequence[str]) -> list[dict[str, str]]:
    """The ``list`` prompt as chat messages."""
    return LIST_TEMPLATE.messages(query, passages)


def list_answer(order: Iterable[int]) -> str:
    """A list answer as the judge writes it: 0-based positions -> ``"[3] > [1] > [2]"``."""
    return " > ".join(f"[{i + 1}]" for i in order)


# -- reading answers -------------------------------------------------------------------------


class ShapeAnswer(NamedTuple):
    """What an answer says: ``value`` (a set's winner, a list's permutation; None: unparsed),
    whether it was ``repaired``, a ``reason`` naming the repairs or why it is unparsed, and for a
    set read from log-probabilities the ``probs`` over the k labels."""

    value: int | tuple[int, ...] | None
    repaired: bool = False
    reason: str = ""
    probs: tuple[float, ...] | None = None

    @property
    def parsed(self) -> bool:
        """True when the answer says something (``value`` is not None)."""
        return self.value is not None


class ShapeBatch(NamedTuple):
    """A judge's answers to one batch of ``set`` or ``list`` questions (one inference), in order,
    and the batch's usage."""

    answers: list[ShapeAnswer]
    prompt_tokens: int = 0
    completion_tokens: int = 0


_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)


def answer_text(text: str) -> str:
    """``text`` without its reasoning block (rule 1 of the module docstring)."""
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:
        return text[closes[-1].end():]
    opened = _THINK_OPEN.search(text)
    return text[: opened.start()] if opened else text


def _unparsed(reason: str) -> ShapeAnswer:
    return ShapeAnswer(None, False, reason)


def _answer_or_reason(text: object) -> tuple[str | None, str]:
    if not isinstance(text, str):
        return None, f"the answer is a {type(text).__name__}, not text"
    answer = answer_text(text)
    if not answer.strip():
        if _THINK_CLOSE.search(text):
            return None, "nothing after the reasoning block"
        return None, "only an unclosed <think> block" if _THINK_OPEN.search(text) else "an empty answer"
    return answer, ""


_LETTER = r"(?:(?i:passage)\s*(?:\[\s*([A-Za-z])\s*\]|([A-Z]))|\[\s*([A-Za-z])\s*\])(?![A-Za-z0-9])"
_PROSE = r"(?![ \t]+[a-z])"  # a label followed by a lowercase word is part of a sentence
_SET_START = re.compile(r"^[\W_]*?(?:" + _LETTER + r"|([A-Z])(?![A-Za-z0-9]))" + _PROSE)
_SET_PHRASE = re.compile(r"(?i:\banswer(?:\s+is)?|\bmost\s+relevant(?:\s+(?:passage|one))?\s+is)"
                         r"[\s:*\"']*(?:" + _LETTER + r"|([A-Z])(?![A-Za-z0-9]))"
                         r"|(?:" + _LETTER + r"|\b([A-Z])(?![A-Za-z0-9]))[\s*\"']*"
                         r"(?i:is\s+(?:the\s+)?most\s+relevant)")
_SET_NAMED = re.compile(_LETTER)


def _letter(match: re.Match[str]) -> str:
    return next(g for g in match.groups() if g).upper()


def parse_set(text: object, k: int) -> ShapeAnswer:
    """The winner (0-based, in the order shown) of a generated ``set`` answer among ``k``
    passages (rule 2 of the module docstring); unparsed when there is none.

    Example:
        >>> parse_set(" C", 4).value, parse_set("Passage A and Passage C look close.", 4).value
        (2, None)
    """
    _check_size("set", k, "k")
    answer, why = _answer_or_reason(text)
    if answer is None:
        return _unparsed(why)
    found = _SET_START.match(answer)
    how = "the label the answer starts with"
    if found is None:
        phrases = list(_SET_PHRASE.finditer(answer))
        found, how = (phrases[-1], "the last answer phrase") if phrases else (None, "")
    if found is None:
        named = list(dict.fromkeys(_letter(m) for m in _SET_NAMED.finditer(answer)))
        if len(named) > 1:
            return _unparsed(f"the answer names several passages ({', '.join(named)}) "
                             "and gives no answer phrase")
        if not named:
            return _unparsed("no passage label in the answer")
        label, how = named[0], "the only passage the answer names"
    else:
        label = _letter(found)
    index = SET_LABELS.index(label)
    if index >= k:
        return _unparsed(f"label {label} is not among the {k} passages shown")
    return ShapeAnswer(index, False, how)


_BRACKETED = re.compile(r"\[\s*(\d+)\s*\]")
_BRACKET_GAP = re.compile(r"^[\s>≻,;:|\-=→]*(?:\d+[.)]\s*)?(?i:passage\s*)?$")
_BARE = re.compile(r"(?<![\w.\[])(\d+)(?![\w\]]|\.\d)")
_BARE_GAP = re.compile(r"^\s*(?:>>?|≻)\s*(?i:passage\s*)?$")
_ONLY_NUMBERS = re.compile(r"^[\d\s>,;]*\d[\d\s>,;]*$")
_NUMBER_LIST = re.compile(r"\[\s*\d+(?:\s*,\s*\d+)+\s*\]")  # a JSON-style list: [3, 1, 2]


def _chains(answer: str, pattern: re.Pattern[str], gap: re.Pattern[str]) -> list[tuple[int, list[int]]]:
    """(start, ids) of each run of ``pattern`` matches separated by ``gap``s."""
    chains: list[tuple[int, list[int]]] = []
    end = None
    for match in pattern.finditer(answer):
        if end is not None and gap.match(answer[end: match.start()]):
            chains[-1][1].append(int(match.group(1)))
        else:
            chains.append((match.start(), [int(match.group(1))]))
        end = match.end()
    return chains


def _list_ids(answer: str) -> list[int] | None:
    chains = [(m.start(), [int(n) for n in re.findall(r"\d+", m.group())])
              for m in _NUMBER_LIST.finditer(answer)]
    if _BRACKETED.search(answer):
        chains += _chains(answer, _BRACKETED, _BRACKET_GAP)
    elif not chains and _ONLY_NUMBERS.match(answer.strip().rstrip(".")):
        chains = [(0, [int(n) for n in re.findall(r"\d+", answer)])]
    elif not chains:
        chains = [c for c in _chains(answer, _BARE, _BARE_GAP) if len(c[1]) >= 2]
    if not chains:
        return None
    return max(chains, key=lambda chain: (len(chain[1]), -chain[0]))[1]  # the longest, then the first


def parse_list(text: object, w: int) -> ShapeAnswer:
    """The permutation of ``range(w)`` (best first) a generated ``list`` answer gives, repaired
    where needed (rule 3 of the module docstring); unparsed when there is none.

    Example:
        >>> answer = parse_list("<think>[1] first?</think> Ranking: [3] > [1] > [3]", 4)
        >>> answer.value, answer.repaired
        ((2, 0, 1, 3), True)
        >>> parse_list("I cannot rank these.", 4).parsed
        False
    """
    _check_size("list", w, "w")
    answer, why = _answer_or_reason(text)
    if answer is None:
        return _unparsed(why)
    ids = _list_ids(answer)
    if ids is None:
        return _unparsed("no passage identifiers in the answer")
    order: dict[int, None] = {}  # insertion-ordered
    outside: list[int] = []
    repeated: list[int] = []
    for n in ids:
        if not 1 <= n <= w:
            outside.append(n)
        elif n - 1 in order:
            repeated.append(n)
        else:
            order[n - 1] = None
    if not order:
        return _unparsed(f"no identifier between 1 and {w} in the answer")
    missing = [i for i in range(w) if i not in order]
    notes = [f"{what} {' '.join(f'[{n}]' for n in ns)}" for what, ns in (
        ("dropped out-of-range", outside), ("dropped repeated", repeated),
        ("appended missing", [i + 1 for i in missing])) if ns]
    return ShapeAnswer((*order, *missing), bool(notes), "; ".join(notes))


_TOKEN_TRIM = " \t\n\r\u0120\u2581[]()\"'*:."


def token_label(token: object, k: int) -> int | None:
    """The 0-based passage a next-token string names among ``k`` set labels (``" C"``, ``"C"``,
    ``"ĠC"``, ``"[C"``: see rule 4 of the module docstring), else None."""
    if not isinstance(token, str):
        return None
    core = token.strip(_TOKEN_TRIM)
    if len(core) != 1 or core not in SET_LABELS[:k]:
        return None
    return SET_LABELS.index(core)


def _entries(top: object) -> Iterable[tuple[object, object]] | None:
    if isinstance(top, Mapping):
        return top.items()
    if isinstance(top, (str, bytes)) or not isinstance(top, Iterable):
        return None
    out = []
    for entry in top:
        if isinstance(entry, Mapping):
            out.append((entry.get("token"), entry.get("logprob")))
        elif isinstance(entry, (tuple, list)) and len(entry) == 2:
            out.append((entry[0], entry[1]))
    return out


def label_logprobs(top_logprobs: object, k: int) -> dict[int, float]:
    """The best log-probability of each of the ``k`` labels seen among a next token's top
    log-probabilities (0-based passage -> logprob; rule 4 of the module docstring).

    Raises:
        UnusableLogprob: a label token's value is not a real number, or is NaN or +inf.
    """
    _check_size("set", k, "k")
    entries = _entries(top_logprobs)
    if entries is None:
        raise UnusableLogprob("top log-probabilities must be a mapping or a list, "
                              f"got {type(top_logprobs).__name__}")
    best: dict[int, float] = {}
    for token, logprob in entries:
        index = token_label(token, k)
        if index is None:
            continue
        if not usable_logprob(logprob):
            raise UnusableLogprob(f"the log-probability of {token!r} is {logprob!r}")
        best[index] = max(best.get(index, -math.inf), float(logprob))  # type: ignore[arg-type]
    return best


def set_from_scores(scores: Mapping[int, float], k: int) -> ShapeAnswer:
    """A ``set`` answer from the labels' scores (:func:`label_logprobs`): the softmax over the
    ``k`` labels (unseen: probability 0) and its argmax; unparsed when no label has a score
    above -inf."""
    if not scores:
        return _unparsed(f"no label among {SET_LABELS[0]}..{SET_LABELS[k - 1]} in the top log-probabilities")
    top = max(scores.values())
    if top == -math.inf:
        return _unparsed("every label seen has probability 0")
    weights = [math.exp(scores[i] - top) if i in scores else 0.0 for i in range(k)]
    total = math.fsum(weights)
    winner = max(scores, key=lambda i: (scores[i], -i))
    return ShapeAnswer(winner, False, "label log-probabilities", tuple(w / total for w in weights))


def set_from_logprobs(top_logprobs: object, k: int) -> ShapeAnswer:
    """A ``set`` answer among ``k`` passages from the first answer token's top
    log-probabilities: the winner and ``probs`` over the k labels (rule 4 of the module
    docstring); unparsed when they name no label or one of theirs is unusable.

    Example:
        >>> answer = set_from_logprobs({" A": -1.6, " B": -0.3, " the": -2.0}, 3)
        >>> answer.value, [round(p, 2) for p in answer.probs]
        (1, [0.21, 0.79, 0.0])
    """
    try:
        scores = label_logprobs(top_logprobs, k)
    except UnusableLogprob as exc:
        return _unparsed(str(exc))
    return set_from_scores(scores, k)


# -- tokens ------------------------------------------------------------------------------------

def _render(shape: str, query: str, passages: Sequence[str], chat: Callable[[str], str] | None) -> str:
    if shape == "pair":
        if len(passages) != 2:
            raise ValueError(f"a pair shows 2 passages; passages: {len(passages)}")
        instruction = PRP_TEMPLATE.render(query, passages[0], passages[1])
        if chat is not None:
            return chat(instruction) + PRP_TEMPLATE.answer_prefix
        return f"{instruction} {PRP_TEMPLATE.answer_prefix}"
    if shape not in TEMPLATES:
        raise ValueError(f"shape must be 'pair', 'set' or 'list', got {shape!r}")
    return TEMPLATES[shape].render(query, passages, chat)


@lru_cache(maxsize=256)
def template_tokens(shape: str, n: int) -> int:
    """The estimated tokens of a ``shape`` prompt's own text for ``n`` passages: the prompt
    rendered with an empty query and empty passages, at 4 characters a token."""
    return estimate_tokens(_render(shape, "", [""] * n, None))


def input_tokens(shape: str, query: str, passages: Sequence[str], *,
                 tokenizer: object = None, chat: Callable[[str], str] | None = None,
                 passage_tokens: int | None = 128, query_tokens: int | None = 64) -> int:
    """The input tokens of a ``pair``, ``set`` or ``list`` prompt (see the module docstring):
    counted with ``tokenizer`` (``encode``/``decode``, or a callable that counts), else estimated.
    ``chat`` (a chat template, ``instruction -> text``) applies when counting only."""
    passages = list(passages)
    if tokenizer is None:  # the one estimate (cost.model), with this template's own size
        return estimate_question_tokens(query, passages, passage_tokens, query_budget=query_tokens,
                                        template_tokens=template_tokens(shape, len(passages)))
    cutter = tokenizer if hasattr(tokenizer, "encode") and hasattr(tokenizer, "decode") else None
    rendered = _render(shape, truncate(query, query_tokens, cutter),  # type: ignore[arg-type]
                       [truncate(p, passage_tokens, cutter) for p in passages], chat)  # type: ignore[arg-type]
    return _count(tokenizer, rendered)


def _count(tokenizer: object, text: str) -> int:
    counted = tokenizer.encode(text) if hasattr(tokenizer, "encode") else tokenizer(text)  # type: ignore[operator]
    return counted if isinstance(counted, int) else len(counted)


#: The room a generated list answer gets: this many times the tokens of ``[1] > ... > [w]``, + 8.
LIST_TOKEN_ROOM = 2


def answer_room(shape: str, n: int, tokenizer: object = None) -> int:
    """The most tokens a judge may generate to answer a ``shape`` question about ``n`` passages:
    1 for a pair or a set (a label), :data:`LIST_TOKEN_ROOM` times :func:`output_tokens` plus 8
    for a list (room for spaces and a closing word, not for an essay)."""
    if shape != "list":
        return output_tokens(shape, n, tokenizer=tokenizer)
    return LIST_TOKEN_ROOM * output_tokens("list", n, tokenizer=tokenizer) + 8


def output_tokens(shape: str, n: int, *, tokenizer: object = None) -> int:
    """The tokens an answer to a ``shape`` question about ``n`` passages needs: 1 for a pair or
    a set, the tokens of ``[1] > [2] > ... > [n]`` for a list (see the module docstring)."""
    if shape in ("pair", "set"):
        return 1
    if shape != "list":
        raise ValueError(f"shape must be 'pair', 'set' or 'list', got {shape!r}")
    _check_size("list", n, "n")
    if tokenizer is not None:
        return _count(tokenizer, list_answer(range(n)))
    return sum(3 + len(str(i)) for i in range(1, n + 1)) - 1
