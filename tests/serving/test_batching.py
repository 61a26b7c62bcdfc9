"""The micro-batcher: queued queries share one model call, answers and errors reach each caller."""

from __future__ import annotations

import threading
import time

import pytest

from recdiff.serving.batching import MicroBatcher
from recdiff.serving.predictor import Predictor


class _Recording(Predictor):
    """The run's predictor, recording batch sizes; its first call waits until released."""

    def __init__(self, run_dir) -> None:
        loaded = Predictor.load(run_dir)
        super().__init__(
            loaded.model,
            loaded.users,
            loaded.items,
            loaded.inputs,
            loaded.seen,
            loaded.config,
            loaded.metrics,
            loaded.directory,
        )
        self.batches: list[int] = []
        self.entered, self.release = threading.Event(), threading.Event()
        self.fail = False

    def recommend_queries(self, queries, ks, *rest):
        self.batches.append(len(queries))
        if len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(10)
        if self.fail:
            raise RuntimeError("model exploded")
        return super().recommend_queries(queries, ks, *rest)


@pytest.fixture
def recording(run_dir):
    return _Recording(run_dir)


def test_requests_queued_during_a_call_form_the_next_batch(recording):
    batcher = MicroBatcher(recording, max_rows=4)
    users = recording.users.external(list(range(9))).tolist()
    first = batcher.submit(recording.query(user=users[0]), k=5)
    assert recording.entered.wait(10)  # the worker is busy with the first request
    waiting = [batcher.submit(recording.query(user=u), k=3 + i) for i, u in enumerate(users[1:])]
    recording.release.set()
    results = [first.result(10)] + [f.result(10) for f in waiting]
    batcher.close()
    assert recording.batches == [1, 4, 4]  # eight queued requests, at most four per call
    for i, (user, result) in enumerate(zip(users, results, strict=True)):
        expected = Predictor.recommend(recording, user=user, k=5 if i == 0 else 3 + i - 1)
        assert result.items == expected.items
        assert result.scores == pytest.approx(expected.scores, rel=1e-5, abs=1e-6)


def test_a_batch_waits_for_as_many_requests_as_the_last_one_had(recording):
    batcher = MicroBatcher(recording, max_rows=8, max_wait_ms=1000)
    query = recording.query(history=[3, 4])
    first = batcher.submit(query, k=5)
    assert recording.entered.wait(10)
    waiting = [batcher.submit(query, k=5) for _ in range(3)]
    recording.release.set()
    for future in [first, *waiting]:
        future.result(10)
    assert recording.batches == [1, 3]
    # Three are expected now: the first to come waits for the two that follow it.
    early = batcher.submit(query, k=5)
    time.sleep(0.1)
    assert not early.done()
    late = [batcher.submit(query, k=5) for _ in range(2)]
    for future in [early, *late]:
        future.result(10)
    assert recording.batches == [1, 3, 3]
    batcher.submit(query, k=5).result(10)  # alone: waits up to 1 s once, then expects one
    start = time.monotonic()
    batcher.submit(query, k=5).result(10)
    assert time.monotonic() - start < 0.5  # an idle service does not wait
    batcher.close()
    assert recording.batches == [1, 3, 3, 1, 1]


def test_errors_reach_every_waiting_caller_and_cancelled_requests_are_skipped(recording):
    batcher = MicroBatcher(recording)
    first = batcher.submit(recording.query(user=recording.users.ids[0]), k=5)
    assert recording.entered.wait(10)
    cancelled = batcher.submit(recording.query(history=[1, 2]), k=5)
    failing = batcher.submit(recording.query(history=[3, 4]), k=5)
    assert cancelled.cancel()
    recording.fail = True
    recording.release.set()
    with pytest.raises(RuntimeError, match="model exploded"):
        first.result(10)
    with pytest.raises(RuntimeError, match="model exploded"):
        failing.result(10)
    batcher.close()
    assert recording.batches == [1, 1]  # the cancelled request was never scored
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(recording.query(history=[3]), k=5)


def test_bad_arguments_are_refused_at_submission(recording):
    batcher = MicroBatcher(recording)
    with pytest.raises(ValueError, match=r"k must lie in 1\.\.500"):
        batcher.submit(recording.query(history=[3]), k=501)
    with pytest.raises(ValueError, match="one-row queries"):
        batcher.submit(recording.query_users(recording.users.ids[:2]), k=5)
    with pytest.raises(ValueError, match="max_rows"):
        MicroBatcher(recording, max_rows=0)
    with pytest.raises(ValueError, match="max_wait_ms"):
        MicroBatcher(recording, max_wait_ms=-1)
    batcher.close()
    assert recording.batches == []
