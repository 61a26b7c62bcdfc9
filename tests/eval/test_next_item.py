import numpy as np
import pytest
import torch

from recdiff.data.batches import SequenceExamples, examples_from_sequences
from recdiff.eval.next_item import evaluate_next_item, history_matrix, past_items_matrix


def _examples(targets, history=None):
    targets = np.asarray(targets, dtype=np.int64)
    if history is None:
        history = np.full((len(targets), 2), 5, dtype=np.int64)  # all pads (n_items = 5)
    lengths = (history < 5).sum(axis=1).astype(np.int64)
    return SequenceExamples(history, lengths, targets)


def test_hit_rate_and_ndcg_from_known_ranks():
    # 5 items; example 0 target 2 ranked 1st, example 1 target 0 ranked 3rd, example 2 last
    scores = torch.tensor(
        [
            [0.1, 0.2, 0.9, 0.3, 0.0],
            [0.5, 0.9, 0.1, 0.8, 0.0],
            [0.5, 0.9, 0.1, 0.8, 0.0],
        ]
    )
    examples = _examples([2, 0, 4])
    result = evaluate_next_item(
        lambda history, lengths: scores,
        examples,
        n_items=5,
        ks=(1, 3),
        metrics=("hit_rate", "ndcg", "mrr"),
    )
    assert result["hit_rate@1"] == pytest.approx(1 / 3)
    assert result["hit_rate@3"] == pytest.approx(2 / 3)
    assert result["ndcg@3"] == pytest.approx((1.0 + 1 / np.log2(4)) / 3)
    assert result["mrr@3"] == pytest.approx((1.0 + 1 / 3) / 3)
    assert result.per_user["hit_rate@3"].tolist() == [1.0, 1.0, 0.0]


def test_ties_go_to_the_lower_item_index():
    scores = torch.zeros(2, 4)  # all tied: item 0 ranks first, item 3 last
    examples = SequenceExamples(np.full((2, 1), 4), np.zeros(2, dtype=np.int64), np.array([0, 3]))
    result = evaluate_next_item(lambda h, n: scores, examples, n_items=4, ks=(1, 3))
    assert result.per_user["hit_rate@1"].tolist() == [1.0, 0.0]
    assert result.per_user["hit_rate@3"].tolist() == [1.0, 0.0]


def test_exclude_history_masks_items_of_each_history():
    scores = torch.tensor([[0.9, 0.8, 0.1, 0.0]])
    examples = SequenceExamples(np.array([[4, 0]]), np.array([1]), np.array([1]))
    kept = evaluate_next_item(lambda h, n: scores, examples, n_items=4, ks=(1,))
    masked = evaluate_next_item(
        lambda h, n: scores, examples, n_items=4, ks=(1,), exclude_history=True
    )
    assert kept["hit_rate@1"] == 0.0  # item 0 outranks the target
    assert masked["hit_rate@1"] == 1.0  # item 0 was in the history


def test_exclude_history_masks_the_whole_past_of_cut_sequences():
    """User 0 had items 0, 1, 2, 3 and then 4; user 1 had 2 then 5 (6 items). With windows of 2
    items, user 0's example sees [2, 3], but items 0 and 1 were hers too: all four are masked."""
    indptr, items = np.array([0, 5, 7]), np.array([0, 1, 2, 3, 4, 2, 5])
    examples = examples_from_sequences(indptr, items, np.array([4, 6]), max_len=2, pad_id=6)
    assert examples.history.tolist() == [[2, 3], [6, 2]]
    assert past_items_matrix(examples, 6).toarray().tolist() == [
        [1, 1, 1, 1, 0, 0],
        [0, 0, 1, 0, 0, 0],
    ]
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5, 0.0]] * 2)  # targets 4 and 5 rank low
    result = evaluate_next_item(
        lambda h, n: scores, examples, n_items=6, ks=(1, 2), exclude_history=True
    )
    # user 0: items 0-3 masked, target 4 first; user 1: item 2 masked, order 0, 1, 3, 4, 5
    assert result.per_user["hit_rate@1"].tolist() == [1.0, 0.0]
    assert result.per_user["hit_rate@2"].tolist() == [1.0, 0.0]
    windows_only = evaluate_next_item(
        lambda h, n: scores,
        SequenceExamples(examples.history, examples.lengths, examples.targets),
        n_items=6,
        ks=(1,),
        exclude_history=True,
    )
    assert windows_only.per_user["hit_rate@1"].tolist() == [0.0, 0.0]  # item 0 not masked


def test_batches_see_their_own_examples():
    rng = np.random.default_rng(0)
    history = rng.integers(0, 6, size=(10, 3))
    examples = SequenceExamples(history, np.full(10, 3), rng.integers(0, 6, size=10))
    table = torch.from_numpy(rng.random((10, 6)))
    index = {tuple(row): i for i, row in enumerate(history.tolist())}

    def score(h, lengths):
        return table[[index[tuple(row)] for row in h.tolist()]]

    whole = evaluate_next_item(score, examples, 6, ks=(2,), batch_size=100)
    small = evaluate_next_item(score, examples, 6, ks=(2,), batch_size=3)
    assert whole.means == small.means


def test_history_matrix_drops_pads_and_duplicates():
    matrix = history_matrix(np.array([[3, 1, 1], [3, 3, 0]]), n_items=3)
    assert matrix.toarray().tolist() == [[0, 1, 0], [1, 0, 0]]
