"""Judging through the cache: the one road from a prompt to the judge.

Every prompt the project sends goes through :func:`judge_batch`: the scheduler's steps, fitting
a simulated judge to a real one (:func:`judge_all`), and replays from a store of earlier runs.
Rules kept here and nowhere else:

* **One call per batch.** The prompts of a batch that a replay store holds (a
  :class:`~prp.cache.TieredCache` with ``replay=True``) are answered from it; the rest go to
  the backend in one ``judge`` call, timed. A batch the store answers whole makes no call.
  Replayed prompts are charged the store's token estimate, so a batch's usage does not depend
  on what was replayed.
* **Answers are checked** (:func:`prp.judgment.check_result`); any other exception from the
  backend becomes a :class:`~prp.oracles.base.BackendError` naming the backend, whose
  ``prompt_fault`` says whether the exception may be one prompt's fault
  (:func:`prp.oracles.base.prompt_fault`: the scheduler then splits the batch).
* **Unparsed answers are never cached.** Parsed ones are stored as soon as their batch
  returns, so a later failure loses nothing judged. (Caches store what they are given.)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from prp.cache import Cache, MemoryCache, TieredCache
from prp.cache_keys import Key, prompt_key
from prp.judgment import check_result
from prp.oracles.base import Backend, BackendError, prompt_fault
from prp.types import BatchResult, Choice, Judgment, Prompt, ShapedPrompt


@dataclass(frozen=True, slots=True)
class Inference:
    """What one batch cost: the ``on_inference`` hook's argument.

    ``result`` holds one checked judgment per prompt (replayed ones included) and the batch's
    usage; ``sent`` is how many prompts reached the backend (the rest were replayed),
    ``sent_tokens`` the prompt tokens it reported for them and ``seconds`` the wall time of its
    call (0 and 0.0 when nothing was sent)."""

    prompts: Sequence[Prompt]
    result: BatchResult
    sent: int
    sent_tokens: int
    seconds: float

    def record(self) -> dict:
        """The backend call as a latency sample (:func:`cost.calibrate.fit`'s input)."""
        return {"prompts": self.sent, "prompt_tokens": self.sent_tokens,
                "completion_tokens": self.result.completion_tokens, "seconds": self.seconds}


def lookup(cache: Cache | None, keys: Sequence[Key]) -> list[Judgment | None]:
    """What ``cache`` holds for each key (None: a miss, or no cache)."""
    if cache is None:
        return [None] * len(keys)
    return [cache.get(key) for key in keys]


async def judge_batch(backend: Backend, prompts: Sequence[Prompt], keys: Sequence[Key],
                      cache: Cache | None) -> Inference:
    """Judge one batch through ``cache`` (see the module docstring)."""
    replay: TieredCache | None = cache if getattr(cache, "replay", False) is True else None  # type: ignore[assignment]
    if replay is None:  # the common case: every prompt goes to the backend
        result, seconds = await _judged(backend, prompts)
        _store(cache, keys, result.judgments)
        return Inference(prompts, result, len(prompts), result.prompt_tokens, seconds)
    answers: list[Judgment | None] = replay.recall(keys)
    missing = [i for i, answer in enumerate(answers) if answer is None]
    tokens = completion = sent_tokens = 0
    seconds = 0.0
    if missing:
        sent = [prompts[i] for i in missing]
        result, seconds = await _judged(backend, sent)
        tokens = sent_tokens = result.prompt_tokens
        completion = result.completion_tokens
        for i, judgment in zip(missing, result.judgments, strict=True):
            answers[i] = judgment
        _store(cache, [keys[i] for i in missing], result.judgments)
        replay.judged(sent, tokens, completion)
    if len(missing) < len(prompts):
        held = set(missing)
        replayed = replay.replay_tokens([p for i, p in enumerate(prompts) if i not in held])
        tokens, completion = tokens + replayed[0], completion + replayed[1]
    return Inference(prompts, BatchResult(answers, tokens, completion),  # type: ignore[arg-type]
                     len(missing), sent_tokens, seconds)


async def _judged(backend: Backend, prompts: Sequence[Prompt]) -> tuple[BatchResult, float]:
    """One call of ``backend`` on ``prompts``: its checked answer and the call's wall seconds."""
    started = time.perf_counter()
    try:
        raw = await backend.judge(prompts)
    except BackendError:
        raise
    except Exception as exc:
        raise _failed(backend, len(prompts), exc) from exc
    seconds = time.perf_counter() - started
    return check_result(raw, len(prompts), backend.name), seconds


def _store(cache: Cache | None, keys: Sequence[Key], judgments: Sequence[Judgment]) -> None:
    """Cache the parsed ``judgments`` under their ``keys`` (unparsed ones never): the library's
    MemoryCache in one call, any other cache one ``set`` each."""
    if cache is None:
        return
    answers = [(key, judgment) for key, judgment in zip(keys, judgments, strict=True) if judgment.parsed]
    if type(cache) is MemoryCache:
        cache.set_many(answers)
    else:
        for key, judgment in answers:
            cache.set(key, judgment)


def _failed(backend: Backend, prompts: int, exc: Exception) -> BackendError:
    """A backend's exception on a batch as a BackendError naming it (``prompt_fault`` set)."""
    error = BackendError(f"backend {backend.name!r} failed on a batch of {prompts} "
                         f"prompts: {type(exc).__name__}: {exc}")
    error.prompt_fault = prompt_fault(exc)
    return error


async def judge_all(backend: Backend, prompts: Sequence[Prompt | ShapedPrompt], batch_size: int,
                    cache: Cache | None) -> list[Judgment | Choice]:
    """Judge ``prompts`` (pairs, sets and lists): what the cache holds is answered from it, the
    rest in batches of ``batch_size``, cached as they return."""
    keys = [prompt_key(backend.name, backend.keys_by, p) for p in prompts]
    out = lookup(cache, keys)
    missing = [i for i, judged in enumerate(out) if judged is None]
    for start in range(0, len(missing), batch_size):
        chunk = missing[start: start + batch_size]
        done = await judge_batch(backend, [prompts[i] for i in chunk], [keys[i] for i in chunk], cache)
        for i, judgment in zip(chunk, done.result.judgments, strict=True):
            out[i] = judgment
    return out  # type: ignore[return-value]
