"""Tokenizers that cut passages, and chat templates that wrap the prompt, outside the model.

One prompt must read the same on every backend. The in-process llama.cpp judge truncates with
its model's tokenizer and wraps the instruction in its model's chat template; a judge behind a
server must do the same without the weights. Two ways, both here:

* :func:`local_tokenizer` by name: a packaged model (:mod:`prp.models`) or a ``.gguf`` file,
  loaded by llama.cpp *vocabulary only* (no weights; a fraction of a second), or a Hugging
  Face tokenizer (an id already in the local cache, or a directory). It brings the chat
  template too. :class:`GGUFTokenizer` is also what the in-process judge uses, so both render
  through the same code.
* :class:`ServerTokenizer`: the server's own endpoints, found on first use - llama.cpp's and
  vLLM's ``/tokenize`` and ``/detokenize``, or llama-cpp-python's ``/extras/tokenize`` and
  ``/extras/detokenize``. Truncations are asked for once per text and budget and kept
  (LRU-bounded); the special tokens the server adds to every text (e.g. a BOS) are learnt from
  the empty text and dropped.

Rules: truncation keeps a text whole when it fits its budget, else the decoded first ``budget``
tokens, stripped (:func:`prp.prompts.truncate`); a cut that splits a UTF-8 character drops the
partial character, as the in-process decoder does.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from prp.oracles.base import BackendError


class LocalTokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def chat(self, user: str) -> str:
        """The model's chat template around one user message, ready for the assistant's turn."""
        ...


class GGUFTokenizer:
    """A llama.cpp model's tokenizer and chat template (``llm`` a ``llama_cpp.Llama``)."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.chat_template: str | None = llm.metadata.get("tokenizer.chat_template")
        self._formatter: Any = None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> GGUFTokenizer:
        """The vocabulary of a GGUF file (no weights are read)."""
        try:
            import llama_cpp
        except ImportError as exc:
            raise ImportError("a GGUF tokenizer needs llama.cpp: pip install 'prp[llama]'") from exc
        from llama_cpp._utils import suppress_stdout_stderr

        with suppress_stdout_stderr(disable=False):  # llama.cpp warns that a vocabulary has no context
            return cls(llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False, n_ctx=8))

    def encode(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def decode(self, ids: list[int]) -> str:
        return self.llm.detokenize(ids).decode("utf-8", errors="ignore")

    def chat(self, user: str) -> str:
        if not self.chat_template:
            raise ValueError("this model has no chat template; use chat=False")
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            llm = self.llm
            self._formatter = Jinja2ChatFormatter(
                self.chat_template, eos_token=llm.detokenize([llm.token_eos()]).decode(errors="ignore"),
                bos_token=llm.detokenize([llm.token_bos()]).decode(errors="ignore"))
        return self._formatter(messages=[{"role": "user", "content": user}]).prompt


class HFTokenizer:
    """A Hugging Face tokenizer (local files only: nothing is downloaded)."""

    def __init__(self, name: str) -> None:
        try:
            from transformers import AutoTokenizer
        except ImportError as exc:
            raise ImportError("a Hugging Face tokenizer needs: pip install 'prp[transformers]'") from exc
        try:
            self.tok = AutoTokenizer.from_pretrained(name, local_files_only=True)
        except OSError as exc:
            raise ValueError(f"tokenizer {name!r} is neither a packaged model, a .gguf file nor a "
                             f"Hugging Face tokenizer on this machine ({exc})") from exc
        self.chat_template: str | None = getattr(self.tok, "chat_template", None)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids)

    def chat(self, user: str) -> str:
        if not self.chat_template:
            raise ValueError("this tokenizer has no chat template; use chat=False")
        return self.tok.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                            add_generation_prompt=True)


def local_tokenizer(name: str) -> GGUFTokenizer | HFTokenizer:
    """A packaged model name, a ``.gguf`` path, or a Hugging Face id or directory -> its tokenizer."""
    from prp.models import MODELS, model_path

    if name in MODELS:
        return GGUFTokenizer.load(model_path(name))
    if name.endswith(".gguf"):
        if not Path(name).is_file():
            raise FileNotFoundError(f"no GGUF file at {name}")
        return GGUFTokenizer.load(name)
    return HFTokenizer(name)


# -- the server's tokenizer ------------------------------------------------------------------

Post = Callable[[str, dict[str, Any], frozenset[int]], Awaitable[tuple[int, dict[str, Any] | None]]]
"""POST a JSON payload to a path, retrying transient faults: (200, body), or (status, body or
None) when the status is one of the given ones; anything else raises ``BackendError``."""

NOT_THERE = frozenset({400, 404, 405, 422})  # a tokenize path this server does not have


class _Dialect:
    """How one server family spells tokenize and detokenize."""

    def __init__(self, name: str, tokenize: str, detokenize: str,
                 encode: Callable[[str, str], dict[str, Any]], text_keys: tuple[str, ...]) -> None:
        self.name, self.tokenize, self.detokenize = name, tokenize, detokenize
        self.encode, self.text_keys = encode, text_keys


DIALECTS = (
    # llama.cpp's server reads "content"/"add_special", vLLM "prompt"/"add_special_tokens"
    _Dialect("llama.cpp/vLLM", "/tokenize", "/detokenize",
             lambda model, text: {"model": model, "content": text, "prompt": text, "add_special": False,
                                  "add_special_tokens": False}, ("content", "prompt")),
    _Dialect("llama-cpp-python", "/extras/tokenize", "/extras/detokenize",
             lambda model, text: {"model": model, "input": text}, ("text",)),
)


class TokenizerUnavailable(BackendError):
    """The server has no tokenizer endpoint, or answered it with something unreadable."""


class ServerTokenizer:
    """Truncation by the server's tokenizer, memoised per (text, budget) (see the module docstring)."""

    def __init__(self, model: str, post: Post, max_entries: int = 50_000) -> None:
        self.model, self.post, self.max_entries = model, post, max_entries
        self.dialect: _Dialect | None = None
        self.prefix: list[int] = []  # what the server adds to every text
        self.memo: OrderedDict[tuple[str, int], str] = OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._asked: dict[tuple[str, int], asyncio.Future[None]] = {}  # in flight, by this loop

    async def _detect(self) -> None:
        for dialect in DIALECTS:
            status, body = await self.post(dialect.tokenize, dialect.encode(self.model, ""), NOT_THERE)
            if status == 200 and body is not None and isinstance(body.get("tokens"), list):
                if not all(isinstance(t, int) for t in body["tokens"]):
                    raise TokenizerUnavailable(f"{dialect.tokenize} answered without tokens: {body!r:.200}")
                self.dialect, self.prefix = dialect, body["tokens"]
                return
        raise TokenizerUnavailable(
            "the server has no tokenizer endpoint (/tokenize or /extras/tokenize): give the HTTP "
            "backend a local tokenizer (tokenizer=<packaged model, .gguf file or Hugging Face id>) "
            "or tokenizer=chars (about 4 characters a token)")

    async def _encode(self, text: str) -> list[int]:
        assert self.dialect is not None
        _, body = await self.post(self.dialect.tokenize, self.dialect.encode(self.model, text), frozenset())
        tokens = body.get("tokens") if body is not None else None
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise TokenizerUnavailable(f"{self.dialect.tokenize} answered without tokens: {body!r:.200}")
        n = len(self.prefix)
        return tokens[n:] if n and tokens[:n] == self.prefix else tokens

    async def _decode(self, ids: list[int]) -> str:
        """The text of ``ids``; a cut inside a UTF-8 character drops that character (a server
        that decodes strictly answers 500 there: one to three tokens fewer then decode)."""
        assert self.dialect is not None
        path = self.dialect.detokenize
        for end in range(len(ids), max(len(ids) - 4, 0), -1):
            payload = {"model": self.model, "tokens": ids[:end]}
            status, body = await self.post(path, payload, frozenset({500}))
            if status == 500 and "decode" not in str(body):  # not a split character: retry it
                status, body = await self.post(path, payload, frozenset())
            for key in self.dialect.text_keys if status == 200 and body is not None else ():
                if isinstance(body.get(key), str):  # type: ignore[union-attr]
                    return body[key]  # type: ignore[index]
        raise TokenizerUnavailable(f"{path} could not decode the first {len(ids)} tokens of a text")

    async def _truncate(self, text: str, budget: int) -> str:
        ids = await self._encode(text)
        return text if len(ids) <= budget else (await self._decode(ids[:budget])).strip()

    async def prepare(self, wanted: Iterable[tuple[str, int | None]],
                      gather: Callable[[list[Awaitable[str]]], Awaitable[list[str]]]) -> None:
        """Truncate every (text, budget) not yet known, together (``gather`` runs the coroutines);
        a truncation another call is already asking for is awaited, not asked again.

        On return every wanted truncation is in the memo (kept even past ``max_entries`` while
        wanted): the caller renders at once, with no await in between."""
        keys = list(dict.fromkeys((t, b) for t, b in wanted if b is not None))
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._asked = loop, {}
        while todo := [k for k in keys if k not in self.memo]:  # again if another call evicted some
            if self.dialect is None:
                await self._detect()
            mine = [k for k in todo if k not in self._asked]
            theirs = [self._asked[k] for k in todo if k in self._asked]
            done = {k: loop.create_future() for k in mine}
            self._asked.update(done)
            try:
                cut = await gather([self._truncate(text, budget) for text, budget in mine]) if mine else []
                self.memo.update(zip(mine, cut, strict=True))
            finally:
                for key, future in done.items():
                    self._asked.pop(key, None)
                    future.set_result(None)  # the waiters look in the memo (and retry on a failure)
            if theirs:
                await asyncio.wait(theirs)  # never cancels the other call's futures
        for key in keys:
            self.memo.move_to_end(key)
        keep = set(keys)
        while len(self.memo) > self.max_entries and next(iter(self.memo)) not in keep:
            self.memo.popitem(last=False)

    def truncated(self, text: str, budget: int | None) -> str:
        """A truncation :meth:`prepare` made (call it first for every text of a batch)."""
        if budget is None:
            return text
        return self.memo[(text, budget)]
