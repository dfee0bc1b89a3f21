"""What counts as a usable answer from a judge, and what happens to the others.

The scheduler passes every backend answer through :func:`check_result` (and nothing else
decides it). Rules:

* **Structure** - ``judge()`` must return a :class:`~prp.types.BatchResult` (or an object with
  ``judgments``, ``prompt_tokens``, ``completion_tokens``) holding one
  :class:`~prp.types.Judgment` per prompt, and token counts that are finite numbers >= 0.
  Anything else (a list, None, the wrong number of judgments, a judgment of another type) is a
  malformed answer to the batch: :class:`MalformedAnswer`, a
  :class:`~prp.oracles.base.BackendError` that may be one prompt's fault, so the scheduler
  splits the batch to find it (see :mod:`prp.scheduler`).
* **The answer rule** (one rule for every judge, custom or LLM) - a judgment is *unparsed*
  (``parsed=False``) when its ``preferred`` is not ``"A"``, ``"B"`` or None, or its ``margin`` is
  not None and not a real number (a string, a bool, NaN...). A NaN margin is never a decided
  tie. An **infinite margin is a decision**, the most decisive there is: +inf for A, -inf for B
  (margins are returned as floats, infinities kept). How infinities aggregate (they outvote any
  finite sum; +inf and -inf cancel; a soft ranker receives +-:data:`~prp.aggregate.DECISIVE`;
  the bias estimate skips them) is :mod:`prp.aggregate`'s rule. For LLM judges read through
  log-probabilities (:mod:`prp.prompts`): a log-probability of " A" or " B" that is not a number
  (a string, null, ``true``), NaN or +inf makes that answer unparsed; -inf is probability 0 (one
  side only seen: a decided answer); other tokens' values are ignored.
* **Unparsed policy** - an unparsed answer is never cached and never decides a comparison. The
  scheduler sends each unparsed prompt once more, in a later batch of the same step (within
  the inference budget); if the second answer is unparsed too, the comparison counts as a tie
  and the prompt is counted in ``Ledger.unparsed`` (the retries in ``Ledger.unparsed_retries``).
  Every run that gives up on a prompt says so: :class:`UnparsedWarning` (library) or a line
  on stderr (``prp rerank``). ``max_unparsed`` (``--max-unparsed``) turns a share above the
  threshold into :class:`UnparsedError` (``prp rerank`` exit code 5).
* **Shares** - :func:`unparsed_share` is unparsed prompts over prompts judged (cache hits are
  not judged; a retried prompt counts once).
"""

from __future__ import annotations

import math
import numbers

from cost.ledger import Ledger
from prp.oracles.base import BackendError
from prp.types import BatchResult, Choice, Judgment

UNPARSED = Judgment(None, None, parsed=False)
UNPARSED_CHOICE = Choice(None, None, parsed=False)
_SIDES = ("A", "B")


class UnparsedError(RuntimeError):
    """Too large a share of a run's prompts stayed unparsed (above ``max_unparsed``).

    ``results`` holds the rankings reached (unparsed comparisons counted as ties), if any;
    every parsed judgment is already in the cache."""

    def __init__(self, message: str, results: list | None = None) -> None:
        super().__init__(message)
        self.results = results or []


class MalformedAnswer(BackendError):
    """A backend's answer to a batch is not one judgment per prompt (see the module docstring);
    it may be one prompt's fault, so the batch is split."""

    prompt_fault = True


class UnparsedWarning(RuntimeWarning):
    """Some prompts stayed unparsed after their retry and were counted as ties."""


def check_choice(choice: Choice) -> Choice:
    """A set or list answer (:class:`~prp.types.Choice`) if usable: ``order`` a non-empty tuple
    of slot numbers (ints >= 0), ``probs`` None or finite numbers; :data:`UNPARSED_CHOICE`
    otherwise. Whether the slots fit the prompt is the scheduler's check (it knows the prompt)."""
    order, probs, parsed, repaired = choice
    if parsed is not True or type(order) is not tuple or not order:
        return UNPARSED_CHOICE
    if any(type(slot) is not int or slot < 0 for slot in order):
        return UNPARSED_CHOICE
    if probs is not None and (type(probs) is not tuple or any(
            isinstance(p, bool) or not isinstance(p, numbers.Real) or not math.isfinite(p) for p in probs)):
        return UNPARSED_CHOICE
    return choice if repaired is True or repaired is False else Choice(order, probs, True, bool(repaired))


def check_judgment(judgment: object, backend: str = "backend") -> Judgment | Choice:
    """``judgment`` if usable, with its margin as a float; :data:`UNPARSED` if its content is not
    (see the module docstring); BackendError if it is not a Judgment (or, for a set or list
    prompt, a :class:`~prp.types.Choice`: :func:`check_choice`) at all."""
    if type(judgment) is Choice:
        return check_choice(judgment)
    if type(judgment) is not Judgment and not isinstance(judgment, Judgment):
        raise MalformedAnswer(f"backend {backend!r} returned a {type(judgment).__name__} where a "
                              "Judgment was expected")
    preferred, margin, parsed = judgment
    if not parsed:
        return UNPARSED
    if preferred is not None and not (type(preferred) is str and preferred in _SIDES):
        return UNPARSED
    if margin is not None:
        if type(margin) is not float:
            if isinstance(margin, bool) or not isinstance(margin, numbers.Real):
                return UNPARSED
            try:
                margin = float(margin)
            except OverflowError:  # an integer too large for a float: decisive
                margin = math.inf if margin > 0 else -math.inf
            judgment = Judgment(preferred, margin)
        if math.isnan(margin):
            return UNPARSED
    if parsed is not True:
        judgment = Judgment(preferred, margin)
    return judgment


def check_result(result: object, prompts: int, backend: str = "backend") -> BatchResult:
    """The backend's answer to a batch of ``prompts`` prompts, checked (see the module
    docstring): a BatchResult of usable or unparsed judgments, or BackendError."""
    if type(result) is BatchResult:
        judgments, prompt_tokens, completion_tokens = result
    else:
        judgments = getattr(result, "judgments", None)
        prompt_tokens = getattr(result, "prompt_tokens", 0)
        completion_tokens = getattr(result, "completion_tokens", 0)
    if type(judgments) is not list and not isinstance(judgments, (list, tuple)):
        raise MalformedAnswer(f"backend {backend!r} returned {type(result).__name__} from judge(), "
                              "not a BatchResult with a list of judgments")
    if len(judgments) != prompts:
        raise MalformedAnswer(f"backend {backend!r} returned {len(judgments)} judgments for "
                              f"{prompts} prompts")
    for field, value in (("prompt_tokens", prompt_tokens), ("completion_tokens", completion_tokens)):
        if not (type(value) is int or (isinstance(value, numbers.Real) and not isinstance(value, bool)
                                       and math.isfinite(value))) or value < 0:
            raise MalformedAnswer(f"backend {backend!r} reported {field}={value!r}; expected a "
                                  "number >= 0")
    checked = None
    for index, judgment in enumerate(judgments):
        # the common case, inline: a parsed Judgment with a float margin and a known side
        if (type(judgment) is Judgment and judgment[2] is True and type(judgment[1]) is float
                and not math.isnan(judgment[1])
                and (judgment[0] is None or (type(judgment[0]) is str and judgment[0] in _SIDES))):
            continue
        good = check_judgment(judgment, backend)
        if good is not judgment:
            if checked is None:
                checked = list(judgments)
            checked[index] = good
    if checked is None and type(result) is BatchResult and type(judgments) is list:
        return result
    return BatchResult(list(judgments) if checked is None else checked, prompt_tokens, completion_tokens)


def judged_prompts(ledger: Ledger) -> int:
    """Prompts judged for their first time (retries of unparsed prompts not counted again)."""
    return ledger.prompts - ledger.unparsed_retries


def unparsed_share(ledger: Ledger) -> float:
    """Unparsed prompts over prompts judged (0 when nothing was judged)."""
    judged = judged_prompts(ledger)
    return ledger.unparsed / judged if judged else 0.0


def describe_unparsed(ledger: Ledger) -> str:
    """E.g. ``"12 of 3400 prompts (0.35 %) stayed unparsed after one retry"``."""
    return (f"{ledger.unparsed} of {judged_prompts(ledger)} prompts "
            f"({100 * unparsed_share(ledger):.2f} %) stayed unparsed after one retry")


def check_max_unparsed(value: object, name: str = "max_unparsed") -> float | None:
    """``value`` if it is None or a fraction in [0, 1]; ValueError otherwise."""
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or not 0 <= value <= 1):
        raise ValueError(f"{name} must be a fraction between 0 and 1, got {value!r}")
    return float(value)
