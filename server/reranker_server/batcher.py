"""Dynamic batching across concurrent requests, on two threads bridged to asyncio futures.

    event loop --submit--> intake --[tokeniser thread]--> rounds --[inference thread]--> futures

The tokeniser thread gathers requests, tokenises them, sorts all their pairs by length and cuts
padded micro-batches. The inference thread runs those micro-batches and routes each score back to
its request. While one round runs, the next is tokenised: both halves release the GIL, so they
overlap. A request that finds the model idle goes at once; while the model is busy, the next round
stays open up to `max_wait_s` (or until a round's worth of tokens is waiting) for companions, since
they would wait for the model anyway. Holding a lone request back would only add idle time: 5 ms
on a 50 ms int8 request of ten snippets.

Every request carries a deadline. Expired requests are answered before they touch the model;
a request whose tokenisation or inference fails is answered alone, its companions are not.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from reranker_server.admission import ThroughputEstimate, predicted_finish_s, retry_after_s
from reranker_server.engine import EncodedPairs, Engine, Feeds, Truncation, estimate_tokens
from reranker_server.errors import DeadlineExceeded, InferenceFailed, NotReady, Overloaded, RerankerError
from reranker_server.metrics import Metrics
from reranker_server.microbatch import plan_micro_batches

log = logging.getLogger(__name__)

#: Rounds tokenised ahead of the one running: one is enough to overlap, more only adds latency.
ROUNDS_AHEAD: Final = 1
#: A round gathers up to this many model calls' worth of tokens. Sorting many requests' pairs together
#: is what cuts padding across requests, and one call's worth (1024 tokens on a CPU) holds only two
#: or three small requests; a round much larger would only delay the requests arriving behind it.
ROUND_CALLS: Final = 8
#: Characters per token assumed before any text was tokenised; low, so early estimates err high.
INITIAL_CHARS_PER_TOKEN: Final = 3.0
CHARS_PER_TOKEN_SMOOTHING: Final = 0.2


@dataclass(frozen=True)
class Scored:
    """What a request gets back: one raw logit per document, in the documents' order."""

    logits: np.ndarray
    tokens: int


@dataclass(eq=False)
class Job:
    """One request's pairs on their way through the batcher."""

    query: str
    documents: Sequence[str]
    max_tokens_per_doc: int | None
    deadline: float
    truncation: Truncation
    estimated_tokens: int
    submitted: float
    future: concurrent.futures.Future[Scored] = field(default_factory=concurrent.futures.Future)
    abandoned: bool = False
    pairs: EncodedPairs | None = None
    logits: np.ndarray | None = None
    remaining: int = 0
    accounted_tokens: int = 0
    started: float | None = None

    @property
    def finished(self) -> bool:
        return self.abandoned or self.future.done()


@dataclass(frozen=True)
class MicroBatch:
    feeds: Feeds
    members: list[tuple[Job, int]]


class Batcher:
    """Owns the two worker threads, the intake queue and the queued-token account."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch_tokens: int,
        max_wait_s: float,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.max_batch_tokens = max_batch_tokens
        self.round_tokens = ROUND_CALLS * max_batch_tokens
        self.max_wait_s = max_wait_s
        self.metrics = metrics
        self.clock = clock
        self.throughput = ThroughputEstimate()
        self.chars_per_token = INITIAL_CHARS_PER_TOKEN
        self._intake: deque[Job] = deque()
        self._intake_tokens = 0
        self._wakeup = threading.Condition()
        self._rounds: queue.Queue[list[MicroBatch] | None] = queue.Queue(maxsize=ROUNDS_AHEAD)
        self._account_lock = threading.Lock()
        self._queued_tokens = 0
        self._stopping = False
        self._inferring = False
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._tokenise_loop, name="reranker-tokenise", daemon=True),
            threading.Thread(target=self._inference_loop, name="reranker-inference", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float) -> None:
        """Finish what was admitted (bounded by `timeout_s`), then end both threads."""
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify_all()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._wakeup:
            leftovers = list(self._intake)
            self._intake.clear()
        for job in leftovers:
            self._fail(job, NotReady("the server is shutting down"))

    # -- the event loop's side -------------------------------------------------------------------

    @property
    def queued_tokens(self) -> int:
        return self._queued_tokens

    def estimate(self, query: str, documents: Sequence[str]) -> int:
        """Tokens these pairs will cost, from their character counts (no tokenising on the loop)."""
        query_chars = len(query)
        return sum(
            estimate_tokens(query_chars, len(document), self.chars_per_token, self.engine.max_length)
            for document in documents
        )

    def admit(self, estimated_tokens: int, budget_s: float) -> None:
        """Raise Overloaded when the queue ahead cannot drain within this request's budget."""
        inference = self.throughput.inference_per_token
        tokenize = self.throughput.tokenize_per_token
        wait = retry_after_s(self._queued_tokens, estimated_tokens, inference, budget_s, tokenize)
        if wait is not None:
            raise Overloaded(
                f"the server is at capacity ({self._queued_tokens} tokens queued would not finish within "
                f"the {budget_s:.2f} s latency budget); retry after {wait} s",
                retry_after_s=wait,
                predicted_s=predicted_finish_s(self._queued_tokens, estimated_tokens, inference, tokenize),
            )

    async def score(
        self,
        query: str,
        documents: Sequence[str],
        *,
        timeout_s: float,
        max_tokens_per_doc: int | None = None,
        estimated_tokens: int | None = None,
        truncation: Truncation = "right",
    ) -> Scored:
        """Queue one request and wait for its logits, at most until its deadline."""
        now = self.clock()
        job = Job(
            query=query,
            documents=documents,
            max_tokens_per_doc=max_tokens_per_doc,
            deadline=now + timeout_s,
            truncation=truncation,
            estimated_tokens=estimated_tokens
            if estimated_tokens is not None
            else self.estimate(query, documents),
            submitted=now,
        )
        self._submit(job)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(job.future), timeout=timeout_s)
        except TimeoutError:
            job.abandoned = True
            raise DeadlineExceeded(
                f"the request was not scored within its {timeout_s:.2f} s deadline; the server is overloaded"
            ) from None
        except asyncio.CancelledError:
            job.abandoned = True
            raise

    def _submit(self, job: Job) -> None:
        with self._wakeup:
            if self._stopping:
                raise NotReady("the server is shutting down")
            self._intake.append(job)
            self._intake_tokens += job.estimated_tokens
            self._wakeup.notify()
        self._account(job, job.estimated_tokens)

    # -- accounting ------------------------------------------------------------------------------

    def _account(self, job: Job, tokens: int) -> None:
        """Set how many queued tokens `job` holds, keeping the total and its gauge in step."""
        with self._account_lock:
            self._queued_tokens += tokens - job.accounted_tokens
            job.accounted_tokens = tokens
            self.metrics.queued_tokens.set(self._queued_tokens)

    def _fail(self, job: Job, error: RerankerError) -> None:
        self._account(job, 0)
        # The waiting side may have cancelled a moment ago: then nobody is listening.
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            job.future.set_exception(error)

    def _complete(self, job: Job) -> None:
        self._account(job, 0)
        assert job.logits is not None
        assert job.pairs is not None
        result = Scored(logits=job.logits, tokens=job.pairs.total_tokens)
        # The request may have given up (deadline or disconnect) while its last batch ran.
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            job.future.set_result(result)

    # -- tokeniser thread ------------------------------------------------------------------------

    def _model_busy(self) -> bool:
        """Whether a round is running or ready to run (callers hold `_wakeup`)."""
        return self._inferring or not self._rounds.empty()

    def _gather(self) -> list[Job] | None:
        """Wait for work; while the model is busy, hold the batch open up to max_wait_s for more."""
        with self._wakeup:
            while not self._intake and not self._stopping:
                self._wakeup.wait()
            if not self._intake:
                return None
            close_at = self._intake[0].submitted + self.max_wait_s
            while self._intake_tokens < self.round_tokens and not self._stopping and self._model_busy():
                remaining = close_at - self.clock()
                if remaining <= 0:
                    break
                self._wakeup.wait(remaining)
            jobs = [self._intake.popleft()]
            taken = jobs[0].estimated_tokens
            while self._intake and taken + self._intake[0].estimated_tokens <= self.round_tokens:
                taken += self._intake[0].estimated_tokens
                jobs.append(self._intake.popleft())
            self._intake_tokens -= taken
            return jobs

    def _tokenise_loop(self) -> None:
        try:
            while (jobs := self._gather()) is not None:
                self._rounds.put(self._prepare(jobs))
        finally:
            self._rounds.put(None)

    def _prepare(self, jobs: list[Job]) -> list[MicroBatch]:
        """Tokenise each live job alone (a bad one fails alone), then cut micro-batches across all."""
        live: list[Job] = []
        for job in jobs:
            if job.finished:
                self._account(job, 0)
                continue
            if self.clock() > job.deadline:
                self._fail(job, DeadlineExceeded("the request's deadline passed while it was queued"))
                continue
            started = time.perf_counter()
            try:
                job.pairs = self.engine.encode(
                    job.query, job.documents, job.max_tokens_per_doc, truncation=job.truncation
                )
            except Exception:
                log.exception("tokenising a request failed; its batch companions continue")
                self._fail(job, InferenceFailed("the request's text could not be tokenised"))
                continue
            self.throughput.observe_tokenize(job.pairs.total_tokens, time.perf_counter() - started)
            self._calibrate(job)
            job.logits = np.empty(len(job.documents), dtype=np.float32)
            job.remaining = len(job.documents)
            self._account(job, job.pairs.total_tokens)
            live.append(job)
        if not live:
            return []
        owners = [(job, row) for job in live for row in range(len(job.documents))]
        lengths = np.concatenate([job.pairs.lengths for job in live if job.pairs is not None])
        batches = []
        for indices in plan_micro_batches(lengths, self.max_batch_tokens):
            members = [owners[i] for i in indices]
            batches.append(MicroBatch(feeds=self._pad(members), members=members))
        return batches

    def _pad(self, members: list[tuple[Job, int]]) -> Feeds:
        ids = [job.pairs.ids[row] for job, row in members if job.pairs is not None]
        type_ids = [
            job.pairs.type_ids[row] for job, row in members if job.pairs is not None and job.pairs.type_ids
        ]
        return self.engine.pad(ids, type_ids)

    def _calibrate(self, job: Job) -> None:
        """Learn characters per token from pairs that were not truncated (truncation hides the ratio)."""
        assert job.pairs is not None
        whole = job.pairs.lengths < self.engine.max_length
        if not whole.any():
            return
        chars = sum(len(job.query) + len(d) for d, keep in zip(job.documents, whole, strict=True) if keep)
        tokens = int((job.pairs.lengths[whole] - self.engine.special_tokens).sum())
        if tokens > 0 and chars > 0:
            ratio = chars / tokens
            self.chars_per_token += CHARS_PER_TOKEN_SMOOTHING * (ratio - self.chars_per_token)

    # -- inference thread ------------------------------------------------------------------------

    def _inference_loop(self) -> None:
        while (batches := self._rounds.get()) is not None:
            self._set_inferring(True)
            try:
                for batch in batches:
                    self._run(batch)
            finally:
                self._set_inferring(False)

    def _set_inferring(self, inferring: bool) -> None:
        """Flag the model busy or idle; going idle wakes the tokeniser to dispatch what waits."""
        with self._wakeup:
            self._inferring = inferring
            if not inferring:
                self._wakeup.notify_all()

    def _run(self, batch: MicroBatch) -> None:
        now = self.clock()
        for job in {job for job, _ in batch.members}:
            if job.finished:
                self._account(job, 0)  # it gave up (deadline or disconnect): its tokens leave the queue
            elif now > job.deadline:
                self._fail(job, DeadlineExceeded("the request's deadline passed while it was queued"))
        if all(job.finished for job, _ in batch.members):
            return
        for job, _ in batch.members:
            if job.started is None:
                job.started = now
                self.metrics.queue_wait.observe(now - job.submitted)
        started = time.perf_counter()
        try:
            logits = self.engine.run(batch.feeds)
        except Exception:
            log.exception("a micro-batch failed; scoring its requests one by one to isolate the cause")
            self._run_isolated(batch)
            return
        elapsed = time.perf_counter() - started
        self._observe(batch.feeds, elapsed)
        self._deliver(batch.members, logits)

    def _run_isolated(self, batch: MicroBatch) -> None:
        """Re-run each request of a failed micro-batch on its own: only the culprit fails."""
        by_job: dict[Job, list[tuple[Job, int]]] = {}
        for job, row in batch.members:
            by_job.setdefault(job, []).append((job, row))
        for job, members in by_job.items():
            if job.finished:
                self._account(job, 0)
                continue
            try:
                logits = self.engine.run(self._pad(members))
            except Exception:
                log.exception("scoring a request failed; its batch companions were answered")
                self._fail(job, InferenceFailed("the model failed on this request"))
                continue
            self._deliver(members, logits)

    def _deliver(self, members: list[tuple[Job, int]], logits: np.ndarray) -> None:
        for (job, row), logit in zip(members, logits, strict=True):
            if job.finished:
                # It gave up while this call ran: if this was its last batch, nothing later would
                # release its tokens, and admission would keep counting work nobody waits for.
                self._account(job, 0)
                continue
            if job.logits is None or job.pairs is None:
                continue
            job.logits[row] = logit
            job.remaining -= 1
            self._account(job, job.accounted_tokens - int(job.pairs.lengths[row]))
            if job.remaining == 0:
                self._complete(job)

    def _observe(self, feeds: Feeds, elapsed_s: float) -> None:
        self.throughput.observe_inference(feeds.real_tokens, elapsed_s)
        self.metrics.inference.observe(elapsed_s)
        self.metrics.batch_pairs.observe(feeds.batch_size)
        self.metrics.batch_tokens.observe(feeds.padded_tokens)
        self.metrics.padding_efficiency.observe(feeds.real_tokens / feeds.padded_tokens)
