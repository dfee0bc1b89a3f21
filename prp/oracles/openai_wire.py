"""Reading what an OpenAI-compatible server answers: bodies, choices, usage, Retry-After.

Rules: a judgment comes from the next token's top log-probabilities (" A" vs " B"); a choice
without them is read from its text (a preference with no margin); unreadable text gives an
unparsed judgment (``parsed=False``), never a silent preference. A log-probability of " A" or
" B" that is not a number (a string, null, ``true``), NaN or +inf makes the choice unparsed
(not read from its text: the server's answer is broken; :mod:`prp.judgment` holds the rule).
Usage counts that are not finite numbers read as 0. Nothing here does I/O.

Set and list questions (:func:`shape_answer`; the rules of reading are :mod:`prp.shape_text`'s):
a ``set`` answer comes from the label tokens' top log-probabilities - of the first token (a
completion) or of the first generated token that is a label (chat) - and, when the choice has
none or they name no label, from its text; an unusable label log-probability makes it unparsed,
as for pairs. A ``list`` answer is read from the generated text.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from typing import Any

import httpx

from prp.prompts import UnusableLogprob, judgment_from_scores, parse_answer, scores_from_top_logprobs
from prp.shape_text import ShapeAnswer, label_logprobs, parse_list, parse_set, set_from_scores, token_label
from prp.types import Judgment

_UNPARSED = Judgment(None, None, parsed=False)


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (a number or an HTTP date), if any."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def snippet(response: httpx.Response) -> str:
    """The start of a response body, on one line, for error messages."""
    text = " ".join(response.text.split())
    return text[:200] + ("..." if len(text) > 200 else "")


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The body if it is a JSON object, else None."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def with_choices(body: dict[str, Any] | None) -> dict[str, Any] | None:
    """``body`` if it holds a non-empty list of choice objects, else None."""
    choices = body.get("choices") if isinstance(body, dict) else None
    ok = isinstance(choices, list) and choices and all(isinstance(c, dict) for c in choices)
    return body if ok else None


def completion_judgment(choice: dict[str, Any]) -> Judgment:
    """A /v1/completions choice -> judgment: top logprobs of the first token, else its text."""
    logprobs = choice.get("logprobs")
    tops = logprobs.get("top_logprobs") if isinstance(logprobs, dict) else None
    if isinstance(tops, list) and tops and isinstance(tops[0], dict):
        try:
            judgment = judgment_from_scores(*scores_from_top_logprobs(tops[0]))
        except UnusableLogprob:
            return _UNPARSED
        if judgment.parsed:
            return judgment
    return parse_answer(str(choice.get("text") or ""))


def _as_pairs(entries: list[Any]) -> list[tuple[Any, Any]]:
    """Chat logprob entries ({"token", "logprob"}) -> (token, logprob) pairs."""
    return [(entry.get("token"), entry.get("logprob")) for entry in entries if isinstance(entry, dict)]


def chat_judgment(choice: dict[str, Any]) -> Judgment:
    """A chat choice -> judgment: the first generated "A"/"B" token's top logprobs, else text."""
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    for item in content if isinstance(content, list) else []:
        if isinstance(item, dict) and str(item.get("token", "")).strip() in ("A", "B"):
            alternatives = item.get("top_logprobs")
            entries = [item, *(alternatives if isinstance(alternatives, list) else [])]
            try:
                return judgment_from_scores(*scores_from_top_logprobs(_as_pairs(entries)))
            except UnusableLogprob:
                return _UNPARSED
    message = choice.get("message")
    return parse_answer(str(message.get("content") or "") if isinstance(message, dict) else "")


def choice_text(choice: dict[str, Any]) -> str:
    """The generated text of a completions choice (``text``) or a chat choice (``message.content``)."""
    message = choice.get("message")
    if isinstance(message, dict):
        return str(message.get("content") or "")
    return str(choice.get("text") or "")


def _set_top(choice: dict[str, Any], k: int) -> Any:
    """The top log-probabilities to read a set's labels from, or None."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        return None
    tops = logprobs.get("top_logprobs")
    if isinstance(tops, list) and tops and isinstance(tops[0], (dict, list)):
        return tops[0]
    content = logprobs.get("content")
    for item in content if isinstance(content, list) else []:
        if isinstance(item, dict) and token_label(item.get("token"), k) is not None:
            alternatives = item.get("top_logprobs")
            return [item, *(alternatives if isinstance(alternatives, list) else [])]
    return None


def shape_answer(choice: dict[str, Any], shape: str, n: int) -> ShapeAnswer:
    """A completions or chat choice -> the answer to a ``set`` or ``list`` question about ``n``
    passages (see the module docstring)."""
    if shape == "list":
        return parse_list(choice_text(choice), n)
    if shape != "set":
        raise ValueError(f"shape must be 'set' or 'list', got {shape!r}")
    top = _set_top(choice, n)
    if top is not None:
        try:
            answer = set_from_scores(label_logprobs(top, n), n)
        except UnusableLogprob as exc:
            return ShapeAnswer(None, False, str(exc))
        if answer.parsed:
            return answer
    return parse_set(choice_text(choice), n)


def usage(body: dict[str, Any]) -> tuple[int, int]:
    """(prompt tokens, completion tokens) of a body's ``usage``, 0 where missing."""
    found = body.get("usage")
    found = found if isinstance(found, dict) else {}
    counts = [found.get(key) for key in ("prompt_tokens", "completion_tokens")]
    prompt, completion = (int(n) if isinstance(n, (int, float)) and not isinstance(n, bool)
                          and math.isfinite(n) and n >= 0 else 0 for n in counts)
    return prompt, completion
