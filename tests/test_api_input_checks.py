"""Public Python calls given arguments of the wrong kind: item histories as floats, booleans or a
flat list, indices that are negative or out of range, cut-offs that are not whole numbers,
tensors whose shapes broadcast, containers of the wrong type.

A call passes when it gives the right answer or refuses with words that name the argument. Most
of these calls once did neither (a cast read 0.7 as item 0, a mask as rows 1, 0, 1, -1 as the last
row); each test asserts what a user should get instead.
Every model here is tiny (no training beyond one epoch on a few dozen users).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recdiff.config import load_config
from recdiff.data import Interactions, Vocabulary, time_weights_from_order
from recdiff.data.batches import SequenceExamples
from recdiff.data.sequences import SequenceDataset, UserSequences
from recdiff.data.synthetic_sequences import make_sequences
from recdiff.diffusion import GaussianDiffusion, NoiseSchedule, drop_condition, noise_to
from recdiff.diffusion.schedules import ScheduleError
from recdiff.eval import evaluate, evaluate_scores
from recdiff.eval import metrics as M
from recdiff.eval.next_item import evaluate_next_item
from recdiff.models.diffrec import DiffRec, DiffRecConfig, DiffusionConfig
from recdiff.models.popularity import Popularity
from recdiff.models.sasrec import MostPopular, SASRec, SASRecConfig
from recdiff.retrieval import ItemIndex
from recdiff.serving.predictor import Predictor
from recdiff.serving.sequence_predictor import SequencePredictor
from recdiff.train.config import TrainConfig

# 4 users x 6 items; Popularity counts per item: [1, 3, 1, 1, 1, 0].
ROWS = sp.csr_matrix(
    np.array(
        [[1, 1, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0], [0, 1, 0, 1, 0, 0], [0, 0, 0, 0, 1, 0]],
        dtype=np.float32,
    )
)


@pytest.fixture(scope="module")
def sequences() -> SequenceDataset:
    return make_sequences(n_users=60, n_items=12, n_groups=3, seed=0).leave_one_out(max_len=4)


@pytest.fixture(scope="module")
def sasrec(sequences) -> SASRec:
    training = TrainConfig(epochs=1, batch_size=64, eval_every=1, progress=False)
    return SASRec(SASRecConfig(dim=8, heads=1, blocks=1), training).fit(sequences)


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    users, items = Vocabulary.range(ROWS.shape[0]), Vocabulary.range(ROWS.shape[1])
    config = load_config("demo-popularity")
    return Predictor(Popularity().fit(ROWS), users, items, ROWS, ROWS, config, {})


def _process() -> GaussianDiffusion:
    return GaussianDiffusion(NoiseSchedule.linear(10), prediction="eps")


# ----------------------------------------------------------------- calls that behave well
def test_a_numpy_integer_k_ranks_as_the_python_int(predictor) -> None:
    model = predictor.model
    items, scores = model.recommend(ROWS[:2], k=np.int64(2))
    np.testing.assert_array_equal(items, [[2, 3], [0, 3]])  # count ties: lower index first
    np.testing.assert_array_equal(scores, [[1.0, 1.0], [1.0, 1.0]])
    assert predictor.recommend(user=np.int64(0), k=np.int64(2)).items == [2, 3]


def test_a_repeated_history_item_counts_once(predictor) -> None:
    once = predictor.recommend(history=[1, 4], k=3)
    assert once.items == [0, 2, 3]
    assert predictor.recommend(history=[4, 1, 4, 4], k=3) == once


def test_whole_numbers_stored_as_floats_are_the_same_history(sasrec) -> None:
    as_ints = sasrec.score(np.array([[3, 7]]))
    torch.testing.assert_close(sasrec.score(np.array([[3.0, 7.0]])), as_ints, rtol=0, atol=0)


def test_repeated_evaluation_users_count_once() -> None:
    scores = np.array([[0.1, 0.9, 0.5], [0.8, 0.2, 0.1]])
    truth = sp.csr_matrix(np.array([[0, 1, 0], [0, 0, 1]], dtype=np.float32))
    result = evaluate_scores(scores, truth, ks=[1], users=[1, 1])
    assert result.means == {"recall@1": 0.0, "ndcg@1": 0.0}
    assert result.n_users_evaluated == 1


# ------------------------------------------------------------------ next-item histories
def test_a_flat_history_list_is_refused_naming_histories(sasrec) -> None:
    with pytest.raises((TypeError, ValueError), match="histories"):
        sasrec.recommend([3, 7, 2], k=3)


@pytest.mark.parametrize("history", [[[3.7, 7.2]], [[True, False]]], ids=["fractions", "bools"])
def test_score_refuses_fractional_or_boolean_item_ids(sasrec, history) -> None:
    with pytest.raises((TypeError, ValueError), match="integer"):
        sasrec.score(np.array(history))


def test_score_refuses_fractional_lengths(sasrec) -> None:
    with pytest.raises(ValueError, match="lengths"):
        sasrec.score(np.array([[12, 3, 7]]), lengths=np.array([2.5]))


def test_fit_on_unsplit_sequences_says_to_split_them() -> None:
    user_sequences = make_sequences(n_users=20, n_items=6, n_groups=2, seed=0)
    with pytest.raises(TypeError, match="SequenceDataset"):
        SASRec(SASRecConfig(dim=4, heads=1)).fit(user_sequences)


def _dataset(history, lengths, targets, padding="left") -> SequenceDataset:
    examples = SequenceExamples(np.array(history), np.array(lengths), np.array(targets))
    return SequenceDataset(
        examples, examples, examples, items=Vocabulary.range(4), pad_id=4, padding=padding
    )


@pytest.mark.parametrize(
    ("history", "targets", "padding", "named"),
    [
        ([[4, 9]], [2], "left", "history"),
        ([[4, 1]], [2.5], "left", "targets"),
        ([[4, 1]], [2], "LEFT", "padding"),
    ],
    ids=["item-out-of-range", "fractional-target", "unknown-padding"],
)
def test_sequence_dataset_refuses_what_no_model_can_read(history, targets, padding, named) -> None:
    with pytest.raises((TypeError, ValueError), match=named):
        _dataset(history, [1], targets, padding)


def test_next_item_evaluation_refuses_fractional_targets() -> None:
    # A cast read targets 1.7 and 1.2 as item 1, and both examples scored hit_rate@1 = 1.0.
    def score(history, lengths):
        return torch.tensor([[0.0, 5.0, 0.0, 0.0]]).expand(history.shape[0], -1)

    with pytest.raises(TypeError, match="targets must be an integer numpy array, got float64"):
        examples = SequenceExamples(
            np.array([[4, 1], [1, 2]]), np.array([1, 2]), np.array([1.7, 1.2])
        )
        evaluate_next_item(score, examples, 4, ks=[1])


@pytest.mark.parametrize(
    ("indptr", "items", "named"),
    [([0, 2], [1.5, 0.7], "item"), ([0, 3, 2], [1, 2], "indptr")],
    ids=["fractional-items", "decreasing-indptr"],
)
def test_user_sequences_refuse_malformed_arrays(indptr, items, named) -> None:
    users = Vocabulary.range(len(indptr) - 1)
    with pytest.raises((TypeError, ValueError), match=named):
        UserSequences(np.array(indptr), np.array(items), users, Vocabulary.range(4))


def test_from_pairs_refuses_lists_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="same length"):
        UserSequences.from_pairs([1, 2, 3], [1, 2])


def test_a_sequence_run_refuses_an_unordered_history(sequences) -> None:
    model = MostPopular().fit(sequences)
    served = SequencePredictor(
        model,
        Vocabulary.range(0),
        Vocabulary.range(model.n_items),
        np.zeros(1, dtype=np.int64),
        np.zeros(0, dtype=np.int64),
        None,
        {},
    )
    with pytest.raises(TypeError, match="set"):
        served.recommend(history={5, 2}, k=2)


# ------------------------------------------------------------------------ user-row models
@pytest.mark.parametrize("value", [np.nan, -1.0], ids=["nan", "negative"])
def test_diffrec_scores_only_histories_fit_would_accept(value) -> None:
    config = DiffRecConfig(hidden_dims=[4], diffusion=DiffusionConfig(steps=2))
    model = DiffRec(config).build(5)
    history = sp.csr_matrix(([value], ([0], [3])), shape=(1, 5))
    with pytest.raises(ValueError, match="negative or non-finite"):
        model.score(history)


@pytest.mark.parametrize("k", [2.5, "3", True], ids=["fraction", "text", "boolean"])
def test_predictor_refuses_a_k_that_is_not_an_integer(predictor, k) -> None:
    # (None asks for the default: tests/serving/test_small_catalogue_and_http_edges.py)
    with pytest.raises((TypeError, ValueError), match=rf"k must be .*got {k!r}"):
        predictor.recommend(user=0, k=k)


def test_a_tensor_history_is_served_as_its_integers(predictor) -> None:
    expected = predictor.recommend(history=[1, 3], k=2)
    assert expected.items == [0, 2]
    assert predictor.recommend(history=torch.tensor([1, 3]), k=2) == expected


# ------------------------------------------------------------------------------ data
@pytest.mark.parametrize("user", [-1, 3], ids=["negative", "past-the-end"])
def test_one_users_row_refuses_an_index_outside_the_users(user) -> None:
    data = Interactions.from_indices(
        Vocabulary.range(3), Vocabulary.range(4), [0, 0, 1, 2], [1, 3, 2, 0]
    )
    with pytest.raises(IndexError, match=r"user index .*0\.\.2"):
        data.row(user)


def test_select_entries_refuses_positions_for_a_mask() -> None:
    data = Interactions.from_indices(
        Vocabulary.range(3), Vocabulary.range(4), [0, 0, 1, 2], [1, 3, 2, 0]
    )
    with pytest.raises(TypeError, match="boolean mask"):
        data.select_entries(np.array([0, 2, 3, 1]))


def test_vocabulary_range_refuses_a_fractional_size() -> None:
    with pytest.raises((TypeError, ValueError), match=r"2\.5"):
        Vocabulary.range(2.5)


def test_time_weights_from_order_names_a_negative_user_index() -> None:
    with pytest.raises(ValueError, match="user_idx"):
        time_weights_from_order([-1, 0], [0, 1], (2, 2))


# ------------------------------------------------------------------------------ evaluation
SCORES = np.array([[0.1, 0.9, 0.5, 0.3], [0.4, 0.2, 0.8, 0.6]])
TRUTH = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 1, 0]], dtype=np.float32))


@pytest.mark.parametrize("k", [2.5, True], ids=["fraction", "bool"])
def test_evaluation_refuses_cut_offs_that_are_not_integers(k) -> None:
    with pytest.raises((TypeError, ValueError), match=rf"ks must .*{k}"):
        evaluate_scores(SCORES, TRUTH, ks=[k])


def test_evaluation_names_ks_given_as_one_number() -> None:
    with pytest.raises((TypeError, ValueError), match=r"ks must be a .*sequence"):
        evaluate_scores(SCORES, TRUTH, ks=20)


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda: M.recall_at_k(np.array([[1, 0]]), np.array([1.5]), 2), "n_relevant"),
        (lambda: M.coverage_at_k(np.array([[0, 7]]), 4, 2), "items"),
    ],
    ids=["fractional-n_relevant", "item-past-the-catalogue"],
)
def test_metric_functions_refuse_counts_and_items_they_cannot_read(call, named) -> None:
    with pytest.raises((TypeError, ValueError), match=named):
        call()


# ------------------------------------------------------------------------------ diffusion
@pytest.mark.parametrize(
    ("method", "name", "shape"),
    [
        ("x0_from_eps", "eps", (4, 1)),
        ("eps_from_x0", "x0", (1, 3)),
        ("x0_from_v", "v", (4, 1)),
        ("v_target", "noise", (1, 3)),
    ],
)
def test_conversions_refuse_a_second_tensor_of_another_shape(method, name, shape) -> None:
    process = _process()
    with pytest.raises(ValueError, match=name):
        getattr(process, method)(torch.randn(4, 3), 1, torch.randn(*shape))


def test_an_integer_seed_for_a_generator_is_named() -> None:
    with pytest.raises(TypeError, match="generator"):
        noise_to(_process(), torch.randn(4, 3), 2, generator=0)


def test_schedule_refuses_fractional_timesteps() -> None:
    with pytest.raises(ScheduleError, match="timesteps"):
        NoiseSchedule(np.array([0.1, 0.2]), timesteps=np.array([0.5, 1.7]))


def test_drop_condition_names_a_null_of_the_wrong_width() -> None:
    with pytest.raises(ValueError, match="null"):
        drop_condition(torch.randn(4, 2), torch.zeros(3), 0.5)


# ------------------------------------------------------------------------------ retrieval
ITEMS = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.2]], dtype=np.float32)
QUERIES = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)


def test_item_index_refuses_an_exclude_wider_than_its_items_and_reads_coo() -> None:
    # Keys are row * n_items + item: column 5 of row 0 (4 items) was key 5, row 1's item 1, so
    # row 1 lost item 1 ([2, 3] instead of [1, 2]). A COO exclude failed on 'indptr'.
    index = ItemIndex(ITEMS)
    items, _ = index.top_k(QUERIES, 2)
    np.testing.assert_array_equal(items, [[0, 2], [1, 2]])
    wider = sp.csr_matrix(([1.0], ([0], [5])), shape=(2, 6))
    with pytest.raises(ValueError, match=r"exclude must have .* column per item .*\(4\)"):
        index.top_k(QUERIES, 2, exclude=wider)
    coo = sp.coo_matrix(([1.0], ([0], [2])), shape=(2, 4))
    items, _ = index.top_k(QUERIES, 2, exclude=coo)
    np.testing.assert_array_equal(items, [[0, 3], [1, 2]])  # item 2 left out of row 0
    np.testing.assert_array_equal(items, index.top_k(QUERIES, 2, exclude=coo.tocsr())[0])


def test_item_index_refuses_an_exclude_of_other_rows_and_a_k_that_is_not_an_integer() -> None:
    # A taller exclude (every user's, beside two users' queries) paired its first rows with the
    # queries; k=True was read as 1 and k=2.5 ranked 3 items (np.full of a float shape failed).
    index = ItemIndex(ITEMS)
    taller = sp.csr_matrix(([1.0], ([2], [0])), shape=(3, 4))
    with pytest.raises(ValueError, match=r"a row per query \(2\).*got shape \(3, 4\)"):
        index.top_k(QUERIES, 2, exclude=taller)
    for k in (True, 2.5, "2"):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            index.top_k(QUERIES, k)
    items, _ = index.top_k(QUERIES, np.int64(1))
    np.testing.assert_array_equal(items, [[0], [1]])


def test_faiss_index_names_queries_of_the_wrong_width() -> None:
    pytest.importorskip("faiss")
    index = ItemIndex(ITEMS, "faiss")
    with pytest.raises(ValueError, match="queries"):
        index.top_k(np.ones((1, 3), dtype=np.float32), 2)


def test_a_next_item_model_given_a_matrix_or_its_own_windows_says_what_it_reads(sasrec):
    """A library user's walk: a row model's CSR input failed with scipy's "sparse array length
    is ambiguous", and windows()' own output with "setting an array element with a sequence"."""
    row = sp.csr_matrix(np.eye(1, sasrec.n_items))
    for given, what in ((row, "a scipy sparse matrix"), (sasrec.windows([[1, 2]]), "windows()")):
        with pytest.raises(
            TypeError, match=rf"got {re.escape(what)}.*recommend\(\[\[3, 17, 42\]\]"
        ):
            sasrec.recommend(given, k=3)
    # a tuple of histories is histories
    assert sasrec.recommend(([1, 2], [3]), k=3)[0].shape == (2, 3)


def test_recommend_leaves_out_the_history_as_the_models_of_rows_do(sasrec):
    items, _ = sasrec.recommend([[1, 2, 3]], k=sasrec.n_items - 3)
    assert not set(items[0].tolist()) & {1, 2, 3}
    again, _ = sasrec.recommend([[1, 2, 3]], k=sasrec.n_items, exclude_seen=False)
    assert {1, 2, 3} <= set(again[0].tolist())


def test_noise_of_another_dtype_than_x0_is_refused():
    """Found by a library user's walk: float64 noise turned x_t float64 (the network then failed
    on a dtype mismatch), integer noise was used as drawn."""
    process = GaussianDiffusion(NoiseSchedule.linear(10))
    x0, t = torch.rand(4, 8), torch.randint(0, 10, (4,))
    for wrong in (torch.float64, torch.long, torch.bool):
        noise = torch.ones(4, 8, dtype=wrong)
        with pytest.raises(
            TypeError, match=rf"noise must have x0's dtype torch.float32, got {wrong}"
        ):
            process.q_sample(x0, t, noise)
        with pytest.raises(TypeError, match=r"torch\.randn_like"):
            process.training_losses(lambda x, t: x, x0, t, noise)
    noise = torch.randn(4, 8)
    torch.testing.assert_close(process.q_sample(x0, t, noise), process.q_sample(x0, t, noise))


def test_one_metric_name_as_a_string_is_told_to_be_a_list():
    scores, truth = np.zeros((1, 4)), sp.csr_matrix(np.array([[0, 1, 0, 0]]))
    with pytest.raises(TypeError, match=r"for one metric pass metrics=\['recall'\]"):
        evaluate_scores(scores, truth, ks=[2], metrics="recall")


def test_time_weights_single_must_be_max_or_min():
    from recdiff.data.weighting import linear_time_weights

    with pytest.raises(ValueError, match="single must be 'max' or 'min', got 'bogus'"):
        linear_time_weights(np.array([0]), np.array([1]), 0.2, 1.0, single="bogus")
    assert linear_time_weights(np.array([0]), np.array([1]), 0.2, 1.0, single="min") == [0.2]


def test_mask_items_takes_numpy_scores_as_its_neighbours_do():
    from recdiff.eval import mask_items

    scores = np.arange(6, dtype=np.float32).reshape(2, 3)
    masked = mask_items(scores, sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 1]])))
    assert masked.tolist() == [[float("-inf"), 1.0, 2.0], [3.0, 4.0, float("-inf")]]
    assert scores[0, 0] == 0  # a copy by default
    with pytest.raises(TypeError, match="scores must be a numpy array or torch tensor, got list"):
        mask_items([[0.0, 1.0]], sp.csr_matrix((1, 2)))


def test_an_unknown_id_in_a_read_names_the_readers_own_option():
    import pandas as pd

    from recdiff.data import read_interactions

    items = Vocabulary.from_ids(["a", "b"])
    frame = pd.DataFrame({"user": ["u"], "item": ["c"]})
    with pytest.raises(KeyError, match="pass unknown='drop' to skip them") as caught:
        read_interactions(frame, items=items)
    assert "missing=" not in str(caught.value)
    assert read_interactions(frame, items=items, unknown="drop").nnz == 0


def test_models_take_their_settings_as_a_mapping_too():
    """A library user's walk: DiffRec({"hidden_dims": [16]}) failed with "'dict' object has no
    attribute 'diffusion'", where EASE and Mult-VAE take keywords."""
    from recdiff.models.ldiffrec import LDiffRec

    model = DiffRec({"hidden_dims": [16], "diffusion": {"steps": 5}}, {"epochs": 2})
    assert model.config == DiffRecConfig(hidden_dims=[16], diffusion=DiffusionConfig(steps=5))
    assert model.training.epochs == 2 and model.process.num_steps == 5
    assert LDiffRec({"latent": {"n_clusters": 3}}).config.latent.n_clusters == 3
    assert SASRec({"dim": 8}).config == SASRecConfig(dim=8)
    with pytest.raises(TypeError, match="config must be a DiffRecConfig or a mapping"):
        DiffRec([16])
    with pytest.raises(TypeError, match="config must be a LDiffRecConfig or a mapping"):
        LDiffRec(DiffRecConfig())  # another model's settings


def test_core_calls_at_their_edges_answer_plainly():
    """From a library user's walk: tracebacks that named torch's or numpy's internals."""
    from recdiff.diffusion import LossAwareSampler

    process = GaussianDiffusion(NoiseSchedule.linear(10))
    empty = noise_to(process, torch.rand(0, 8), 3, generator=[])  # no rows, no generators
    assert empty.shape == (0, 8)
    with pytest.raises(TypeError, match=r"schedule must be a NoiseSchedule, got ndarray"):
        GaussianDiffusion(np.linspace(1e-4, 0.02, 10))
    sampler = LossAwareSampler(3, history=1)
    sampler.update(torch.tensor([0, 1, 2]), np.array([1.0, 2.0, 3.0]))  # numpy losses
    sampler.update(torch.tensor([0, 1, 2]), [1.0, 2.0, 3.0])  # a list of them
    assert sampler.warmed_up


def test_an_unknown_inference_option_is_named_with_the_models_own(sasrec):
    """DreamRec.score(h, guidance=0.0) failed naming the private _query_batch."""
    history = np.array([[1, 2]])
    with pytest.raises(
        TypeError, match="SASRec takes no inference option guidance; its options: none"
    ):
        sasrec.score(history, guidance=0.0)
    from recdiff.models.dreamrec import DreamRec

    assert DreamRec.inference_options == ("guidance_weight", "sampler", "sampling_steps")


def _positional(cls) -> list[str]:
    import inspect

    return [
        name
        for name, p in inspect.signature(cls.fit).parameters.items()
        if name != "self" and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def test_fit_takes_only_the_data_by_position() -> None:
    """The models' optional fit arguments differ (Mult-VAE has no ``evaluate``, DiffRec no
    ``averaging``), so a third positional argument would mean one thing to one model and another
    to the next: past the data, each is named."""
    from recdiff.models.dreamrec import DreamRec
    from recdiff.models.ease import EASE
    from recdiff.models.ldiffrec import LDiffRec
    from recdiff.models.multvae import MultVAE

    for cls in (DiffRec, LDiffRec, MultVAE, EASE, Popularity):
        assert _positional(cls) == ["train", "valid"], cls.__name__
    for cls in (SASRec, DreamRec, MostPopular):
        assert _positional(cls) == ["data"], cls.__name__


def test_model_recommend_refuses_a_k_beyond_the_catalogue_or_not_whole(sasrec) -> None:
    """A k above the catalogue was padded with item -1 (numpy's last item, once mapped to ids),
    and k=2.5 failed inside torch.topk; both are refused as Predictor refuses them. Padding
    stays for lists that seen items shorten."""
    model = Popularity().fit(ROWS)
    n = ROWS.shape[1]
    items, _ = model.recommend(ROWS, n)
    assert (items[1] == -1).sum() == ROWS[1].nnz  # user 1's seen items leave padding
    for k, error, words in [(n + 1, ValueError, f"k must lie in 1..{n} "), (2.5, TypeError, "k")]:
        with pytest.raises(error, match=words):
            model.recommend(ROWS, k)
    m = sasrec.n_items
    for k, error, words in [(m + 1, ValueError, f"k must lie in 1..{m} "), (2.5, TypeError, "k")]:
        with pytest.raises(error, match=words):
            sasrec.recommend([[1, 2]], k)


def test_evaluate_names_truth_over_another_catalogue() -> None:
    """truth with 5 item columns against 6-item inputs was blamed on the scores ("shape (4, 6),
    expected (4, 5)"); the same users over another catalogue is named as such."""
    model = Popularity().fit(ROWS)
    with pytest.raises(ValueError, match="inputs has 6 items but truth has 5: both must be"):
        evaluate(model.score, ROWS, ROWS[:, :5])


def test_a_missing_metric_names_the_ones_computed() -> None:
    result = evaluate(Popularity().fit(ROWS).score, ROWS, ROWS, ks=(2,), metrics=("recall",))
    assert result["recall@2"] == result.means["recall@2"]
    with pytest.raises(KeyError, match=r"'mrr@5' was not computed; this result has \['recall@2'\]"):
        result["mrr@5"]


@pytest.mark.parametrize("model", [Popularity(), "ease"])
def test_models_without_a_loop_refuse_train_without_interactions(model) -> None:
    """EASE and the counts fitted an all-zero matrix and ranked every item as a tie; DiffRec
    and Mult-VAE refused it. All refuse it now, in the same words."""
    from recdiff.models.ease import EASE

    model = EASE() if model == "ease" else model
    with pytest.raises(ValueError, match="train has no interactions: every user row is empty"):
        model.fit(sp.csr_matrix(ROWS.shape))
