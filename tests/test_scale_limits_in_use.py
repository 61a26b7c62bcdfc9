"""Catalogues larger than the papers': work that cannot fit in memory is refused up front with a
message naming the memory and the fix, and ranking keeps its temporaries bounded by default.

Small data stands in for large: the memory available is patched down rather than the data up."""

import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

import recdiff.eval.ranking as ranking
from recdiff.cli.main import app
from recdiff.eval.evaluator import evaluate
from recdiff.eval.multi import evaluate_many
from recdiff.eval.next_item import ITEM_CHUNK
from recdiff.eval.protocol import EvalTask
from recdiff.models.ease import EASE, select_ease_lambda
from recdiff.models.popularity import Popularity


def _rows(n_users: int, n_items: int, per_user: int = 4, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    cols = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    indptr = np.arange(0, n_users * per_user + 1, per_user)
    data = np.ones(len(cols), dtype=np.float32)
    return sp.csr_matrix((data, cols, indptr), shape=(n_users, n_items))


@pytest.fixture
def little_memory(monkeypatch):
    """The machine has 10 kB available: EASE on 30 items (18 kB for a fit) does not fit."""
    import recdiff.memory

    monkeypatch.setattr(recdiff.memory, "available_bytes", lambda: 10_000)


# ---------------------------------------------------------------------------- EASE's Gram matrix
def test_ease_refuses_a_catalogue_whose_dense_matrices_do_not_fit(little_memory, monkeypatch):
    import recdiff.models.ease as ease

    def never(train):
        raise AssertionError("the Gram matrix was built before the memory was checked")

    monkeypatch.setattr(ease, "gram_matrix", never)
    train = _rows(20, 30)
    with pytest.raises(ValueError, match=r"EASE on 30 items .* needs about 18 kB") as caught:
        EASE().fit(train)
    assert "data.k_core" in str(caught.value) and "10 kB available" in str(caught.value)
    with pytest.raises(ValueError, match="EASE on 30 items"):
        select_ease_lambda(train, _rows(20, 30, per_user=1, seed=1), grid=(10.0,))


def test_ease_fits_when_the_memory_is_there(monkeypatch):
    import recdiff.memory

    monkeypatch.setattr(recdiff.memory, "available_bytes", lambda: 20 * 30**2)
    assert EASE().fit(_rows(20, 30)).n_items == 30
    monkeypatch.setattr(recdiff.memory, "available_bytes", lambda: None)  # not Linux: no check
    assert EASE().fit(_rows(20, 30)).n_items == 30


def test_recdiff_train_ease_says_error_not_a_traceback(little_memory, tmp_path):
    result = CliRunner().invoke(
        app,
        ["train", "demo-ease", "--runs-dir", str(tmp_path), "--quiet"],
    )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: EASE on "), result.output
    assert "data.k_core" in lines[0]
    assert not list(tmp_path.iterdir())  # nothing left of the run


# ------------------------------------------------------------------------ ranking wide catalogues
@pytest.fixture
def ranked_widths(monkeypatch):
    """The widths of the score blocks ranked in one piece."""
    widths: list[int] = []
    rank = ranking._topk_lowest_index_ties

    def spy(scores, k, *floor):
        widths.append(scores.shape[1])
        return rank(scores, k, *floor)

    monkeypatch.setattr(ranking, "_topk_lowest_index_ties", spy)
    return widths


N_WIDE = ITEM_CHUNK + 1000  # one item chunk and a bit: 9,192 items


def test_evaluations_rank_a_wide_catalogue_in_item_chunks_by_default(ranked_widths):
    """A run's evaluation passes no item_chunk: at 1,024 users x 286,099 items, ranking whole
    blocks took 3.6 GB of temporaries beside the 1.1 GB block (popularity: 5.2 GB peak)."""
    train, truth = _rows(6, N_WIDE), _rows(6, N_WIDE, per_user=2, seed=1)
    model = Popularity().fit(train)
    tasks = {"test": EvalTask(train, truth, train)}
    chunked = evaluate_many(model.score, train, tasks, ks=(5,))["test"]
    assert ranked_widths and max(ranked_widths) <= ITEM_CHUNK
    ranked_widths.clear()
    whole = evaluate(model.score, train, truth, train, ks=(5,), item_chunk=None)
    assert max(ranked_widths) == N_WIDE  # None still ranks the block whole: same metrics
    assert chunked.means == whole.means
    ranked_widths.clear()
    evaluate(model.score, train, truth, train, ks=(5,))
    assert max(ranked_widths) <= ITEM_CHUNK


def test_recommend_ranks_a_wide_catalogue_in_item_chunks(ranked_widths):
    train = _rows(3, N_WIDE)
    items, _ = Popularity().fit(train).recommend(train, 5)
    assert max(ranked_widths) <= ITEM_CHUNK
    assert items.shape == (3, 5)


# ------------------------------------------------------------------ SASRec's all-positions loss
def test_sasrec_all_positions_loss_holds_a_bounded_block_of_logits(monkeypatch):
    """Every position's logits at once: 256 windows of 50 over 286,099 items asked for one
    14.6 GB tensor (then the softmax and its gradient); in chunks one step peaked at 1.1 GB."""
    import torch
    import torch.nn.functional as F

    import recdiff.models.sasrec as sasrec

    n_items, batch, max_len = 50, 4, 6
    torch.manual_seed(0)
    net = sasrec.SASRecNet(n_items, max_len, sasrec.SASRecConfig(dim=8, all_positions=True))
    net.eval()  # no dropout: both passes see the same network
    history = torch.randint(0, n_items, (batch, max_len))
    history[0, :2] = n_items  # left padding: 22 real positions
    targets = torch.randint(0, n_items, (batch,))

    def loss_and_grads():
        net.zero_grad()
        loss = net(history, targets)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in net.parameters() if p.grad is not None]

    whole_loss, whole_grads = loss_and_grads()
    blocks: list[int] = []
    cross_entropy = F.cross_entropy

    def spy(logits, *args, **kwargs):
        blocks.append(logits.numel())
        return cross_entropy(logits, *args, **kwargs)

    monkeypatch.setattr(F, "cross_entropy", spy)
    monkeypatch.setattr(sasrec, "LOSS_BLOCK", 5 * n_items, raising=False)
    chunked_loss, chunked_grads = loss_and_grads()
    assert blocks and max(blocks) <= 5 * n_items
    torch.testing.assert_close(chunked_loss, whole_loss)
    for chunked, whole in zip(chunked_grads, whole_grads, strict=True):
        torch.testing.assert_close(chunked, whole)


@pytest.mark.parametrize("item_chunk", [None, 3, 16, ITEM_CHUNK])
@pytest.mark.parametrize("k", [1, 4, 25])
def test_ties_of_counts_rank_as_a_sort_by_score_then_item(item_chunk, k):
    """Popularity's counts tie at the cut of nearly every chunk: the tied items are ranked from
    the list of ties (the lowest indices first), as a full sort would rank them."""
    rng = np.random.default_rng(k)
    scores = rng.integers(0, 4, size=(7, 60)).astype(np.float32)
    scores[2] = 1.0  # a whole row tied
    scores[3, 50:] = 9.0  # the best items last
    items, values = ranking.topk_items(scores, k, item_chunk=item_chunk)
    expected = np.stack([np.lexsort((np.arange(60), -row))[:k] for row in scores])
    np.testing.assert_array_equal(items, expected)
    np.testing.assert_array_equal(values, np.take_along_axis(scores, expected, axis=1))


# ------------------------------------------------------------------------ training state on CPU
def test_training_refuses_a_model_whose_optimizer_state_does_not_fit(little_memory):
    """Mult-VAE over 1,000,000 items: 1.2 billion weights, 24 GB with gradients and Adam's
    moments; refused before the first step instead of killed in it."""
    from recdiff.models.multvae import MultVAE

    model = MultVAE(hidden_dims=(8,), latent_dim=4, max_epochs=1)
    with pytest.raises(ValueError, match=r"training MultVAE \([\d,]+ weights") as caught:
        model.fit(_rows(20, 200))  # 3,300 weights: 40 kB of training state
    assert "model.hidden_dims" in str(caught.value) and "10 kB available" in str(caught.value)


def test_training_state_that_fits_trains(monkeypatch):
    import recdiff.memory
    from recdiff.models.multvae import MultVAE

    monkeypatch.setattr(recdiff.memory, "available_bytes", lambda: 10**9)
    assert MultVAE(hidden_dims=(8,), latent_dim=4, max_epochs=1).fit(_rows(20, 30)).n_items == 30


# ------------------------------------------------------------------- candidates when exporting
@pytest.fixture(scope="module")
def popularity_predictor(tmp_path_factory):
    from recdiff.config import load_config
    from recdiff.serving.predictor import Predictor
    from recdiff.train.run import run_training

    runs = tmp_path_factory.mktemp("scale-runs")
    return Predictor.load(run_training(load_config("demo-popularity"), runs).directory)


def test_export_with_candidates_masks_columns_not_a_row_per_user(
    popularity_predictor, monkeypatch, tmp_path
):
    """A shortlist rules out the rest of the catalogue for every user: as CSR rows of it,
    exporting 3,000 users of 139,000 items took 112 s and 6 GB (9 s and 1.2 GB without the
    shortlist); as a column mask, 6 s and 1.5 GB, the same file."""
    from recdiff.serving.export import export_recommendations

    predictor = popularity_predictor
    excluded_entries: list[int] = []
    rank = ranking.topk_items

    def spy(scores, k, exclude=None, **options):
        excluded_entries.append(0 if exclude is None else exclude.nnz)
        return rank(scores, k, exclude, **options)

    monkeypatch.setattr(ranking, "topk_items", spy)
    shortlist = list(predictor.items.ids[:5])
    users = predictor.users.ids[:50]
    result = export_recommendations(
        predictor, tmp_path / "recs.csv", k=3, users=users, candidates=shortlist, progress=False
    )
    seen = predictor.query_users(users).exclude.nnz
    assert excluded_entries == [seen]  # the users' seen items only, never rows of the others
    import pandas as pd

    table = pd.read_csv(tmp_path / "recs.csv")
    assert result.rows == len(table) and set(table["item"]) <= set(shortlist)
    full = predictor.recommend(user=users[0], k=len(predictor.items)).items
    expected = [item for item in full if item in shortlist][:3]
    assert table[table["user"] == users[0]]["item"].tolist() == expected
