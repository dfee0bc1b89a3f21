"""A fake OpenAI-compatible judge for the HTTP backend tests, with scripted and random faults.

:class:`FakeJudge` answers /v1/completions and /v1/chat/completions by a relevance table (per doc
id, or per query and doc id): passages are written "doc <id> ...", and the passage with the
higher relevance gets the higher logprob; equal relevance gets equal logprobs, a tie (as the
perfect simulated judge's). ``poison`` is a marker: a judging request with a prompt holding it
is answered 400 (a list too: the whole request, as vLLM refuses a list with one bad prompt).
``garble`` maps a doc id to what " A"'s top log-probability becomes whenever that doc is shown
as passage A (a string, None, True, NaN...: what a broken server may send). ``delay`` makes
each judging request take that long (its own thread: requests in flight together overlap),
standing in for an LLM's forward pass. Set and list prompts (:mod:`prp.shape_text`) are
answered too: a set by its labels' logprobs (the most relevant -0.1, each other that much lower
per grade below it; ``garble`` applies to label A), a list by the text ``[i] > [j] > ...``, most
relevant first (equals in the order shown), with no logprobs.
Each judging request first takes the next scripted :class:`Reply` from ``faults`` (if any is
left), then may draw a random fault (``fault_rate``, from ``fault_mix``). It also serves a byte
tokenizer (one token per UTF-8 byte, so a cut can split a character, and strict decoding then
answers 500 as llama-cpp-python's server does) in llama.cpp's dialect (``/tokenize``) or
llama-cpp-python's (``/extras/tokenize``), or none (404). It serves an ``httpx.MockTransport``
(:meth:`FakeJudge.transport`) or a real socket server (:class:`FaultServer`, which can also be
stopped and restarted on its port, and answers ``GET /v1/models`` and ``GET /health`` at once
even while its judging requests take ``delay``: a slow but live server). ``always`` is a reply
given to every request, judging, tokenizer and GET alike (a server answering 503 to
everything). :class:`HangServer` accepts connections and never answers; :func:`refused_url` is
a port nothing listens on.
"""

from __future__ import annotations

import json
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

PASSAGE = re.compile(r'Passage ([AB]): "doc (\w+)')
QUERY = re.compile(r'Given a query "(.*?)", which of the following two passages', re.S)
# set and list prompts (prp.shape_text): a set answers its best label, a list its order
SET_HEAD = re.compile(r'Given a query "(.*?)", which of the following \d+ passages is the most', re.S)
SET_ITEM = re.compile(r'Passage ([A-Z]): "doc (\w+)')
LIST_HEAD = re.compile(r'Given a query "(.*?)", order the following \d+ passages', re.S)
LIST_ITEM = re.compile(r'\[(\d+)\] "doc (\w+)')
Relevance = Mapping[str, float] | Callable[[str, str], float]  # doc id ->, or (query, doc id) ->


@dataclass
class Reply:
    """One scripted answer. ``body`` None: the judge's real answer (of ``text`` only, if set)."""

    status: int = 200
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    action: str | None = None  # "drop": close the connection without a response; "slow"
    text: str | None = None  # a 200 whose choices carry this text and no logprobs


OK = Reply()
DROP = Reply(action="drop")
SLOW = Reply(action="slow")
MALFORMED = Reply(body=b'{"choices": [{"index": 0, "text": " A"')


def status(code: int, retry_after: str | None = None, body: str = '{"error": "scripted"}') -> Reply:
    return Reply(code, body.encode(), {"Retry-After": retry_after} if retry_after else {})


class FakeJudge:
    """The server's brain; records every request (path, headers, JSON payload) it gets.

    ``relevance``: doc id -> relevance, or a callable (query, doc id) -> relevance, the query as
    the prompt shows it (cut to the backend's query budget).
    """

    def __init__(self, relevance: Relevance, faults: list[Reply] | None = None, *,
                 refuse_lists: int | str | None = None, refuse_lists_times: int | None = None,
                 delay: float = 0.0, tokenizer: str | None = "llama.cpp", tokenize_prefix: tuple = (),
                 fault_rate: float = 0.0, fault_mix: list[Reply] | None = None, seed: int = 0,
                 record: bool = True, always: Reply | None = None, poison: str | None = None,
                 garble: Mapping[str, Any] | None = None) -> None:
        self.relevance = relevance
        self.always = always  # the reply to every request (None: judge as scripted)
        self.poison = poison  # a prompt holding this text is answered 400
        self.garble = dict(garble or {})  # doc id shown as A -> the " A" logprob sent instead
        self.poisoned = 0  # judging requests answered 400 for the poison
        self.faults = list(faults or [])
        self.refuse_lists = refuse_lists  # a status for list prompts, or "first-only"
        self.refuse_lists_times = refuse_lists_times  # refuse only the first N lists (None: all)
        self.delay = delay  # seconds each answer takes (to observe concurrency)
        self.tokenizer = tokenizer  # "llama.cpp", "llama-cpp-python" or None (no endpoint)
        self.tokenize_prefix = list(tokenize_prefix)  # tokens added to every text (a BOS)
        self.fault_rate, self.fault_mix = fault_rate, list(fault_mix or [])
        self.rng = random.Random(seed)
        self.record = record  # keep every request (False: count them only, for long runs)
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.tokenizer_requests: list[tuple[str, dict[str, Any]]] = []
        self.judge_count = self.tokenizer_count = self.get_count = 0
        self.prompt_count = 0  # prompts in the judging requests (a list counts its length)
        self.random_faults = 0
        self.in_flight = self.peak = 0
        self.lock = threading.Lock()

    # -- the answer -------------------------------------------------------------------------

    def logprobs(self, prompt: str) -> tuple[float, float]:
        """(logprob of " A", of " B"): the more relevant passage gets -0.1, the other -2.3; a tie
        -0.7 both."""
        ids = dict(PASSAGE.findall(prompt))
        if callable(self.relevance):
            query = QUERY.search(prompt)
            a, b = (self.relevance(query.group(1) if query else "", ids[s]) for s in "AB")
        else:
            a, b = self.relevance[ids["A"]], self.relevance[ids["B"]]
        if a == b:
            return -0.7, -0.7
        return (-0.1, -2.3) if a > b else (-2.3, -0.1)

    def _relevance(self, query: str, doc: str) -> float:
        return self.relevance(query, doc) if callable(self.relevance) else self.relevance[doc]

    def kwise(self, prompt: str) -> tuple[str, dict[str, Any] | None] | None:
        """A set or list prompt's answer: (text, the top logprobs of its first token or None);
        None for a pair prompt."""
        if head := SET_HEAD.search(prompt):
            shown = SET_ITEM.findall(prompt)
            grades = [self._relevance(head.group(1), doc) for _, doc in shown]
            top: dict[str, Any] = {f" {label}": -0.1 - (max(grades) - g)
                                   for (label, _), g in zip(shown, grades, strict=True)}
            if shown and shown[0][1] in self.garble:
                top[" A"] = self.garble[shown[0][1]]
            return f" {shown[grades.index(max(grades))][0]}", top
        if head := LIST_HEAD.search(prompt):
            shown = LIST_ITEM.findall(prompt)
            grades = [self._relevance(head.group(1), doc) for _, doc in shown]
            order = sorted(range(len(shown)), key=lambda i: -grades[i])
            return " " + " > ".join(f"[{shown[i][0]}]" for i in order), None
        return None

    def completion_choice(self, index: int, prompt: str, text: str | None) -> dict[str, Any]:
        if text is not None:
            return {"index": index, "text": text, "logprobs": None, "finish_reason": "length"}
        if shaped := self.kwise(prompt):
            said, top = shaped
            logprobs = None if top is None else {"tokens": [said], "token_logprobs": [-0.1],
                                                 "top_logprobs": [top]}
            return {"index": index, "text": said, "logprobs": logprobs, "finish_reason": "stop"}
        a, b = self.logprobs(prompt)
        token = " A" if a > b else " B"
        top: dict[str, Any] = {" A": a, " B": b, " C": -5.0}
        shown = dict(PASSAGE.findall(prompt)).get("A")
        if shown in self.garble:
            top[" A"] = self.garble[shown]
        return {"index": index, "text": token, "finish_reason": "length",
                "logprobs": {"tokens": [token], "token_logprobs": [max(a, b)], "top_logprobs": [top]}}

    def chat_choice(self, prompt: str, text: str | None) -> dict[str, Any]:
        if text is not None:
            return {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None}
        if shaped := self.kwise(prompt):
            said, top = shaped
            content = None if top is None else [
                {"token": tok, "logprob": lp, "top_logprobs": [{"token": t, "logprob": v} for t, v in alts]}
                for tok, lp, alts in (("Pass", -0.5, [("Pass", -0.5)]), ("age", -0.01, [("age", -0.01)]),
                                      (said, -0.1, list(top.items())))]
            message = {"role": "assistant", "content": ("Passage" if top else "") + said}
            return {"index": 0, "message": message, "finish_reason": "stop",
                    "logprobs": None if content is None else {"content": content}}
        a, b = self.logprobs(prompt)
        side = " A" if a > b else " B"
        steps = [("Pass", -0.5, [("Pass", -0.5)]), ("age", -0.01, [("age", -0.01)]),
                 (side, max(a, b), [(" A", a), (" B", b), (" C", -5.0)])]
        content = [{"token": tok, "logprob": lp, "bytes": None,
                    "top_logprobs": [{"token": t, "logprob": v, "bytes": None} for t, v in top]}
                   for tok, lp, top in steps]
        return {"index": 0, "message": {"role": "assistant", "content": "Passage" + side},
                "logprobs": {"content": content}, "finish_reason": "length"}

    def tokenize(self, path: str, payload: dict[str, Any]) -> Reply:
        """The byte tokenizer, in the dialect asked for; 404 on the other paths."""
        self.tokenizer_count += 1
        if self.record:
            self.tokenizer_requests.append((path, payload))
        paths = {"llama.cpp": ("/tokenize", "/detokenize", "content", "content"),
                 "llama-cpp-python": ("/extras/tokenize", "/extras/detokenize", "input", "text")}
        tokenize, detokenize, field_in, field_out = paths.get(self.tokenizer or "", ("", "", "", ""))
        if path == tokenize:
            tokens = self.tokenize_prefix + list(payload[field_in].encode("utf-8"))
            return Reply(body=json.dumps({"tokens": tokens}).encode())
        if path == detokenize:
            try:
                text = bytes(payload["tokens"]).decode("utf-8")
            except UnicodeDecodeError as exc:
                return status(500, body=json.dumps({"error": {"message": str(exc)}}))
            return Reply(body=json.dumps({field_out: text}).encode())
        return status(404, body='{"detail": "Not Found"}')

    def answer(self, path: str, payload: dict[str, Any], text: str | None) -> Reply:
        if path.endswith("/chat/completions"):
            prompt = payload["messages"][-1]["content"]
            choices = [self.chat_choice(prompt, text)]
            tokens = len(prompt) // 4
        else:
            prompts = payload["prompt"]
            if self.poison is not None and self.poison in json.dumps(prompts, ensure_ascii=False):
                with self.lock:
                    self.poisoned += 1
                return status(400, body='{"error": "this prompt cannot be judged"}')
            many = isinstance(prompts, list) and len(prompts) > 1
            if many and isinstance(self.refuse_lists, int) and self._refusing():
                return status(self.refuse_lists, body='{"error": "prompt must be a string"}')
            prompts = prompts if isinstance(prompts, list) else [prompts]
            if many and self.refuse_lists == "first-only":
                prompts = prompts[:1]
            choices = [self.completion_choice(i, p, text) for i, p in enumerate(prompts)]
            tokens = sum(len(p) // 4 for p in prompts)
        usage = {"prompt_tokens": tokens, "completion_tokens": len(choices),
                 "total_tokens": tokens + len(choices)}
        return Reply(body=json.dumps({"object": "text_completion", "choices": choices,
                                      "usage": usage}).encode())

    def get(self, path: str) -> Reply:
        """A GET: the model list (``/v1/models``) or health (``/health``), answered at once."""
        with self.lock:
            self.get_count += 1
        if self.always is not None:
            return self.always
        if path.rstrip("/") == "/v1/models":
            return Reply(body=b'{"object": "list", "data": [{"id": "fake-model", "object": "model"}]}')
        if path.rstrip("/") == "/health":
            return Reply(body=b'{"status": "ok"}')
        return status(404, body='{"detail": "Not Found"}')

    def _refusing(self) -> bool:
        if self.refuse_lists_times is None:
            return True
        with self.lock:
            self.refuse_lists_times -= 1
            return self.refuse_lists_times >= 0

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        """Record the request and decide the reply (a scripted or random fault, or the answer)."""
        if self.always is not None:
            with self.lock:
                self.judge_count += path.startswith("/v1/")
                self.tokenizer_count += not path.startswith("/v1/")
            return self.always
        payload = json.loads(raw)
        if not path.startswith("/v1/"):
            with self.lock:
                return self.tokenize(path, payload)
        with self.lock:
            self.judge_count += 1
            prompts = payload.get("prompt")  # absent in a chat request: one prompt
            self.prompt_count += len(prompts) if isinstance(prompts, list) else 1
            if self.record:
                self.requests.append((path, headers, payload))
            scripted = self.faults.pop(0) if self.faults else OK
            if scripted is OK and self.fault_rate and self.rng.random() < self.fault_rate:
                scripted = self.rng.choice(self.fault_mix)
                self.random_faults += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            if scripted.body is None and scripted.action is None:
                return self.answer(path, payload, scripted.text)
            return scripted
        finally:
            with self.lock:
                self.in_flight -= 1

    # -- serving it ---------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        """An in-process transport (no socket); "drop" and "slow" map to httpx's own errors."""

        def handler(request: httpx.Request) -> httpx.Response:
            headers = {k.lower(): v for k, v in request.headers.items()}
            headers["host"] = request.url.host
            if request.method == "GET":
                reply = self.get(request.url.path)
            else:
                reply = self.handle(request.url.path, headers, request.content)
            if reply.action == "drop":
                raise httpx.RemoteProtocolError("Server disconnected", request=request)
            if reply.action == "slow":
                raise httpx.ReadTimeout("timed out", request=request)
            return httpx.Response(reply.status, headers=reply.headers, content=reply.body)

        return httpx.MockTransport(handler)

    def list_requests(self) -> int:
        return sum(isinstance(p.get("prompt"), list) and len(p["prompt"]) > 1
                   for _, _, p in self.requests)


class FaultServer:
    """A real HTTP server on 127.0.0.1 (a free port) serving ``judge`` in a thread.

    ``slow_seconds`` is how long a "slow" reply sleeps before answering (the client should
    time out first). Use as a context manager; ``url`` is its base URL.
    """

    def __init__(self, judge: FakeJudge, slow_seconds: float = 1.0, port: int = 0) -> None:
        self.judge, self.slow_seconds = judge, slow_seconds
        self.connections: set[socket.socket] = set()
        self.server: ThreadingHTTPServer | None = self._bind(port)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread: threading.Thread | None = None

    def _bind(self, port: int) -> ThreadingHTTPServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms stalls
                outer.connections.add(self.connection)

            def finish(self) -> None:
                outer.connections.discard(self.connection)
                super().finish()

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                self._reply(outer.judge.get(self.path))

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                self._reply(outer.judge.handle(self.path, headers, raw))

            def _reply(self, reply: Reply) -> None:
                if reply.action == "drop":
                    self.close_connection = True
                    return
                if reply.action == "slow":
                    time.sleep(outer.slow_seconds)
                    reply = status(504)
                body = reply.body or b""
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that timed out and left: expected here

        return Server(("127.0.0.1", port), Handler)

    def start(self) -> None:
        """Serve (again, on the same port, after :meth:`stop`)."""
        if self.server is None:
            self.server = self._bind(int(self.url.rsplit(":", 1)[1]))
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop listening: connections to the port are refused until :meth:`start`."""
        if self.server is None:
            return
        self.server.shutdown()
        self.server.server_close()
        for conn in list(self.connections):  # kept-alive connections die with the server
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self.thread is not None:
            self.thread.join(timeout=5)
        self.server = None

    def __enter__(self) -> FaultServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class HangServer:
    """Accepts connections on 127.0.0.1 (a free port, or ``port``) and never answers (until closed)."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port a server just left
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        self.sock.settimeout(0.05)
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.held.append(conn)

    def __enter__(self) -> HangServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed.set()
        self.thread.join(timeout=5)
        for conn in self.held:
            conn.close()
        self.sock.close()


def refused_url() -> str:
    """A loopback URL whose port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Flapper:
    """Stops and restarts a :class:`FaultServer` every ``period`` seconds (up first), in a thread."""

    def __init__(self, server: FaultServer, period: float) -> None:
        self.server, self.period = server, period
        self.done = threading.Event()
        self.flips = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.done.wait(self.period):
            if self.server.server is None:
                self.server.start()
            else:
                self.server.stop()
            self.flips += 1

    def __enter__(self) -> Flapper:
        self.server.start()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=5)
        self.server.stop()


class Endpoints:
    """A pool of loopback endpoints of the given kinds, as a context manager.

    Kinds: ``ok`` (a :class:`FakeJudge` that answers), ``dead`` (a refused port), ``hang``
    (accepts, never answers), ``flap`` (a judge whose server is up and down by turns every
    ``flap_period`` seconds), ``faulty`` (a judge drawing random faults at ``fault_rate`` from
    ``fault_mix``). ``urls`` in the order given; ``judges`` are the endpoints' judges (ok, flap,
    faulty), to count what reached them.
    """

    def __init__(self, kinds: list[str], relevance: dict[str, float], *, delay: float = 0.0,
                 flap_period: float = 0.2, fault_rate: float = 0.2, fault_mix: list[Reply] | None = None,
                 slow_seconds: float = 1.0, seed: int = 0, record: bool = True) -> None:
        self.kinds, self.relevance, self.delay = kinds, relevance, delay
        self.flap_period, self.fault_rate, self.seed = flap_period, fault_rate, seed
        self.fault_mix = fault_mix or [status(500), status(503), DROP, MALFORMED, SLOW]
        self.slow_seconds, self.record = slow_seconds, record
        self.urls: list[str] = []
        self.judges: list[FakeJudge] = []
        self.servers: list[FaultServer] = []
        self._open: list[Any] = []

    def __enter__(self) -> Endpoints:
        for n, kind in enumerate(self.kinds):
            if kind == "dead":
                self.urls.append(refused_url())
                continue
            if kind == "hang":
                hang = HangServer().__enter__()
                self._open.append(hang)
                self.urls.append(hang.url)
                continue
            rate = self.fault_rate if kind == "faulty" else 0.0
            judge = FakeJudge(self.relevance, delay=self.delay, fault_rate=rate, fault_mix=self.fault_mix,
                              seed=self.seed + n, record=self.record)
            server = FaultServer(judge, slow_seconds=self.slow_seconds)
            keeper: Any = Flapper(server, self.flap_period) if kind == "flap" else server
            keeper.__enter__()
            self._open.append(keeper)
            self.judges.append(judge)
            self.servers.append(server)
            self.urls.append(server.url)
        return self

    def __exit__(self, *exc: object) -> None:
        for keeper in reversed(self._open):
            keeper.__exit__(None, None, None)

    def judge_requests(self) -> int:
        return sum(j.judge_count for j in self.judges)
