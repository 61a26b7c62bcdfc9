"""Known answers pinning the baselines to their papers.

EASE (Steck, WWW 2019): B = I - P diagMat(1/diag(P)), P = (X^T X + lambda I)^-1, diag(B) = 0,
scores X B; lambda chosen on validation only. Mult-VAE (Liang et al., WWW 2018): dropout on the
L2-normalised input, tanh MLPs, z = mu + eps sigma in training and z = mu at evaluation, loss
-sum_i x_i log softmax(f(z))_i + beta KL with beta = min(beta_max, step / total_anneal_steps).
SASRec (Kang & McAuley, ICDM 2018): learned positions, causal self-attention that never reads
padding, one item table for input and output, full-catalogue cross-entropy (recdiff's design),
dropout off at evaluation. Most popular: counts from train only, ties to the lower index, seen
items masked as the protocol says. For all: seeded, no read of valid/test while training, and a
user's scores depend on that user's input only.

Every expected value here is computed independently of the code under test: by hand (in the
comments), with exact fractions, or with a plain numpy re-derivation written below.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.special import erf

from recdiff.data.sequences import UserSequences
from recdiff.data.vocab import Vocabulary
from recdiff.eval import EvalTask
from recdiff.models import EASE, MultVAE, Popularity, select_ease_lambda
from recdiff.models.multvae import MultVAENet, multvae_loss
from recdiff.models.sasrec import MostPopular, SASRec, SASRecConfig
from recdiff.train.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ----------------------------------------------------------------------------------------- EASE
def _inverse(matrix: list[list[Fraction]]) -> list[list[Fraction]]:
    """Exact Gauss-Jordan inverse of a small non-singular matrix of Fractions."""
    n = len(matrix)
    rows = [list(row) + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if rows[r][col] != 0)
        rows[col], rows[pivot] = rows[pivot], rows[col]
        head = rows[col][col]
        rows[col] = [v / head for v in rows[col]]
        for r in range(n):
            if r != col and rows[r][col] != 0:
                factor = rows[r][col]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[col], strict=True)]
    return [row[n:] for row in rows]


def _ease_by_fractions(x: np.ndarray, l2_lambda: int) -> np.ndarray:
    """Steck's B from an integer matrix X, exactly: B_ij = -P_ij / P_jj (i != j), B_jj = 0."""
    n = x.shape[1]
    gram = [[Fraction(int(x[:, i] @ x[:, j])) for j in range(n)] for i in range(n)]
    for i in range(n):
        gram[i][i] += l2_lambda
    p = _inverse(gram)
    b = [[Fraction(0) if i == j else -p[i][j] / p[j][j] for j in range(n)] for i in range(n)]
    return np.array([[float(v) for v in row] for row in b])


# Users x items: item 0 in users 0-2, item 1 in users 0 and 2, item 2 in users 2 and 3.
EASE_X = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 1]])
# lambda = 1: G + I = [[4, 2, 1], [2, 3, 1], [1, 1, 3]], det 21, adjugate
# [[8, -5, -1], [-5, 11, -2], [-1, -2, 8]], so P = adj / 21 and B_ij = -P_ij / P_jj:
# column 0 divides by 8/21, column 1 by 11/21, column 2 by 8/21. B is not symmetric, so dividing
# rows instead of columns (P_ii) would show.
EASE_B = np.array([[0, 5 / 11, 1 / 8], [5 / 8, 0, 1 / 4], [1 / 8, 2 / 11, 0]])


def test_ease_three_items_by_hand_and_by_exact_fractions() -> None:
    np.testing.assert_allclose(_ease_by_fractions(EASE_X, 1), EASE_B, rtol=1e-12)
    model = EASE(l2_lambda=1.0).fit(sp.csr_matrix(EASE_X.astype(np.float32)))
    np.testing.assert_allclose(model.weights, EASE_B, rtol=1e-6)
    assert (np.diag(model.weights) == 0).all(), "an item must not recommend itself"
    # scores = X B: a history {0} gets row 0 of B; a history {1, 2} the sum of rows 1 and 2.
    history = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 1]], dtype=np.float32))
    expected = [[0, 5 / 11, 1 / 8], [5 / 8 + 1 / 8, 2 / 11, 1 / 4]]
    np.testing.assert_allclose(model.score(history), expected, rtol=1e-6)


def test_ease_weights_of_a_catalogue_wider_than_one_mirroring_block() -> None:
    """LAPACK fills one triangle of P; it is mirrored 512 rows at a time: with 1,100 items the
    blocks below, beside and above the diagonal all occur (the 12-item test has one block)."""
    rng = np.random.default_rng(5)
    x = (rng.random((300, 1100)) < 0.05).astype(np.float64)
    p = np.linalg.inv(x.T @ x + 3.0 * np.eye(1100))
    expected = np.eye(1100) - p / np.diag(p)[None, :]
    weights = EASE(l2_lambda=3.0).fit(sp.csr_matrix(x)).weights
    np.testing.assert_allclose(weights, expected, atol=1e-6)
    assert (np.diag(weights) == 0).all()


def test_ease_item_never_in_train_is_decoupled_and_scores_nothing() -> None:
    # An all-zero column j makes G + lambda I block-diagonal: P_jj = 1 / lambda and P_ij = 0, so
    # row and column j of B are 0 and the other items' B is that of the catalogue without j.
    x = np.hstack([EASE_X, np.zeros((4, 1), dtype=EASE_X.dtype)])
    model = EASE(l2_lambda=1.0).fit(sp.csr_matrix(x.astype(np.float32)))
    np.testing.assert_allclose(model.weights[:3, :3], EASE_B, rtol=1e-6)
    assert (model.weights[3] == 0).all() and (model.weights[:, 3] == 0).all()
    # A history holding only the unseen item: every item, itself included, scores exactly 0.
    only_new = sp.csr_matrix(np.array([[0, 0, 0, 1]], dtype=np.float32))
    assert (model.score(only_new) == 0).all()
    # ... and adding the unseen item to a history changes no score.
    np.testing.assert_array_equal(
        model.score(sp.csr_matrix(np.array([[1, 0, 0, 1]], dtype=np.float32))),
        model.score(sp.csr_matrix(np.array([[1, 0, 0, 0]], dtype=np.float32))),
    )


def test_ease_binarises_weighted_rows_in_fit_and_score() -> None:
    """T-DiffRec's time-weighted rows (w_min .. 1): EASE is defined on binary X here, so the
    weights are those of the binary matrix and a weighted history scores as its binary one."""
    weighted = EASE_X * np.array([[0.1], [1.0], [0.55], [0.3]])
    weighted[2] = [0.1, 0.55, 1.0]  # oldest to newest, as T-DiffRec weights a row
    model = EASE(l2_lambda=1.0).fit(sp.csr_matrix(weighted))
    np.testing.assert_allclose(model.weights, EASE_B, rtol=1e-6)
    np.testing.assert_array_equal(
        model.score(sp.csr_matrix(np.array([[0.0, 0.3, 0.9]]))),
        model.score(sp.csr_matrix(np.array([[0.0, 1.0, 1.0]]))),
    )


def _recall_train_masked(scores: np.ndarray, train: np.ndarray, valid: np.ndarray, k: int):
    """Mean recall@k over users with valid items: train items masked, ties to the lower index."""
    masked = np.where(train > 0, -np.inf, scores.astype(np.float64))
    top = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    values = []
    for user in range(train.shape[0]):
        relevant = np.flatnonzero(valid[user])
        if relevant.size:
            values.append(np.isin(top[user], relevant).sum() / relevant.size)
    return float(np.mean(values))


def test_ease_lambda_is_chosen_on_validation_with_train_masked() -> None:
    rng = np.random.default_rng(7)  # a seed whose best lambdas tie (10 and 30)
    # two item blocks with a little cross-talk, then a quarter of each row held out as valid
    full = np.zeros((24, 10))
    for user in range(24):
        block = np.arange(5) + 5 * (user % 2)
        full[user, rng.choice(block, size=4, replace=False)] = 1
        full[user, rng.integers(10)] = 1
    held = (rng.random(full.shape) < 0.25) & (full > 0)
    train, valid = full * ~held, full * held
    grid = (0.1, 1.0, 10.0, 30.0, 100.0, 1000.0)
    expected = {
        g: _recall_train_masked(
            EASE(l2_lambda=g).fit(sp.csr_matrix(train)).score(sp.csr_matrix(train)),
            train,
            valid,
            k=2,
        )
        for g in grid
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        selection = select_ease_lambda(
            sp.csr_matrix(train), sp.csr_matrix(valid), grid=grid, metric="recall@2"
        )
    assert caught == [], "the best lambda lies inside the grid: no edge warning"
    assert selection.valid_scores == pytest.approx(expected)
    best = max(expected.values())
    first_best = next(g for g in grid if expected[g] == best)  # ties: the earlier grid value
    assert len({g for g in grid if expected[g] == best}) > 1, "the data must exercise a tie"
    assert selection.best_lambda == first_best
    # The selected model is fitted on train alone (valid only chose lambda).
    np.testing.assert_array_equal(
        selection.model.weights, EASE(l2_lambda=first_best).fit(sp.csr_matrix(train)).weights
    )


# ------------------------------------------------------------------------------------ Mult-VAE
# A fixed tiny network: 3 items -> 2 (tanh) -> [mu, logvar] (latent 1) and 1 -> 2 (tanh) -> 3.
VAE_W1 = np.array([[0.5, -1.0, 0.25], [1.0, 0.5, -0.5]])
VAE_B1 = np.array([0.1, -0.2])
VAE_W2 = np.array([[1.0, -0.5], [0.3, 0.2]])  # row 0 -> mu, row 1 -> logvar
VAE_B2 = np.array([0.05, -0.1])
VAE_W3 = np.array([[1.5], [-0.7]])
VAE_B3 = np.array([0.0, 0.2])
VAE_W4 = np.array([[1.0, 0.0], [-1.0, 2.0], [0.5, -0.5]])
VAE_B4 = np.array([0.1, 0.0, -0.1])
VAE_X = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]])


def _fixed_vae(dropout: float) -> MultVAENet:
    net = MultVAENet(3, (2,), 1, dropout)
    layers = [net.encoder[0], net.encoder[2], net.decoder[0], net.decoder[2]]
    params = [(VAE_W1, VAE_B1), (VAE_W2, VAE_B2), (VAE_W3, VAE_B3), (VAE_W4, VAE_B4)]
    with torch.no_grad():
        for layer, (weight, bias) in zip(layers, params, strict=True):
            layer.weight.copy_(torch.tensor(weight))
            layer.bias.copy_(torch.tensor(bias))
    return net


def _encode(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = x / np.linalg.norm(x, axis=1, keepdims=True)  # L2-normalised input
    out = np.tanh(h @ VAE_W1.T + VAE_B1) @ VAE_W2.T + VAE_B2  # no tanh on the last layer
    return out[:, :1], out[:, 1:]


def _decode(z: np.ndarray) -> np.ndarray:
    return np.tanh(z @ VAE_W3.T + VAE_B3) @ VAE_W4.T + VAE_B4


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def test_multvae_evaluation_decodes_mu_and_the_loss_is_the_annealed_multinomial_elbo() -> None:
    net = _fixed_vae(dropout=0.5)
    mu, logvar = _encode(VAE_X)
    logits = _decode(mu)  # z = mu at evaluation: no sampling, no dropout
    neg_ll = -(VAE_X * _log_softmax(logits)).sum(axis=1)
    kl = 0.5 * (-logvar + np.exp(logvar) + mu**2 - 1).sum(axis=1)
    expected_loss = neg_ll.mean() + 0.2 * kl.mean()

    net.eval()
    x = torch.tensor(VAE_X, dtype=torch.float32)
    with torch.no_grad():
        out_logits, out_mu, out_logvar = net(x)
    torch.testing.assert_close(out_mu.double(), torch.tensor(mu), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out_logvar.double(), torch.tensor(logvar), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out_logits.double(), torch.tensor(logits), rtol=1e-6, atol=1e-6)
    loss, out_kl = multvae_loss(out_logits, out_mu, out_logvar, x, beta=0.2)
    assert float(out_kl) == pytest.approx(kl.mean(), rel=1e-5)
    assert float(loss) == pytest.approx(expected_loss, rel=1e-5)

    # MultVAE.score: the same logits, even with the network left in training mode (dropout 0.5
    # and sampling would otherwise change them), and binarised histories.
    model = MultVAE(hidden_dims=(2,), latent_dim=1, dropout=0.5)
    model.net = net.train()
    # (weights that vary within a row: the L2 normalisation would hide a row-wide factor)
    scores = model.score(sp.csr_matrix(VAE_X * np.array([0.3, 1.0, 0.7])))
    torch.testing.assert_close(scores.double(), torch.tensor(logits), rtol=1e-6, atol=1e-6)


def test_multvae_training_samples_z_by_reparameterisation_with_sigma_exp_half_logvar() -> None:
    net = _fixed_vae(dropout=0.0).train()
    mu, logvar = _encode(VAE_X)
    torch.manual_seed(11)
    with torch.no_grad():
        logits, _, _ = net(torch.tensor(VAE_X, dtype=torch.float32))
    torch.manual_seed(11)
    eps = torch.randn(3, 1).double().numpy()
    expected = _decode(mu + eps * np.exp(0.5 * logvar))
    torch.testing.assert_close(logits.double(), torch.tensor(expected), rtol=1e-5, atol=1e-6)
    assert not np.allclose(expected, _decode(mu)), "the draw must move z away from mu"


def test_multvae_dropout_acts_on_the_l2_normalised_input() -> None:
    net = MultVAENet(4, (3,), 2, dropout=0.5).train()
    seen: list[torch.Tensor] = []
    net.encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    torch.manual_seed(0)
    with torch.no_grad():
        net(torch.tensor([[1.0, 0.0, 1.0, 1.0]] * 50))
    values = np.unique(seen[0].numpy()[:, [0, 2, 3]])
    # normalise first (1/sqrt(3) each), then drop with rescaling by 1/(1-p): 0 or 2/sqrt(3).
    # Normalising the dropped row instead would give 1, 1/sqrt(2) or 1/sqrt(3).
    np.testing.assert_allclose(values, [0.0, 2 / math.sqrt(3)], rtol=1e-6)
    assert (seen[0][:, 1] == 0).all()


def test_multvae_beta_anneals_per_step_to_its_cap_and_training_reads_train_rows_only(
    monkeypatch,
) -> None:
    calls: list[tuple[float, torch.Tensor]] = []

    def recording(logits, mu, logvar, x, beta):
        calls.append((beta, x.detach().clone()))
        return multvae_loss(logits, mu, logvar, x, beta)

    monkeypatch.setattr("recdiff.models.multvae.multvae_loss", recording)
    rng = np.random.default_rng(0)
    # 40 users x 8 items; train rows time-weighted (T-DiffRec style), valid on other items.
    train = (rng.random((40, 8)) < 0.4) * rng.choice([0.3, 0.65, 1.0], size=(40, 8))
    train[:, 0] = 1.0  # no empty row, so every row is a distinct training example below
    valid = ((rng.random((40, 8)) < 0.3) & (train == 0)).astype(float)
    model = MultVAE(
        hidden_dims=(4,),
        latent_dim=2,
        batch_size=10,
        max_epochs=2,
        patience=5,
        valid_metric="recall@3",
        beta_max=0.6,
        total_anneal_steps=4,
    )
    model.fit(sp.csr_matrix(train), sp.csr_matrix(valid))
    # beta = min(beta_max, step / total_anneal_steps) for steps 0, 1, ... (4 batches an epoch)
    assert [beta for beta, _ in calls] == pytest.approx([0, 0.25, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6])
    # Each epoch's loss saw exactly the binarised train rows (never valid), each once.
    binary = (train > 0).astype(np.float32)
    for epoch in range(2):
        rows = torch.cat([x for _, x in calls[4 * epoch : 4 * epoch + 4]]).numpy()
        assert sorted(map(tuple, rows)) == sorted(map(tuple, binary))


def test_multvae_a_users_scores_do_not_depend_on_the_batch() -> None:
    net = MultVAENet(6, (5,), 3, dropout=0.5)
    model = MultVAE(hidden_dims=(5,), latent_dim=3)
    model.net = net
    rows = sp.csr_matrix(np.random.default_rng(1).random((7, 6)) < 0.5, dtype=np.float32)
    together = model.score(rows)
    alone = torch.cat([model.score(rows[i]) for i in range(7)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


# -------------------------------------------------------------------------------------- SASRec
SEQ_ITEMS, SEQ_LEN = 5, 4
PAD = SEQ_ITEMS


def _sasrec(seed: int = 0, **settings) -> SASRec:
    config = SASRecConfig(**{"dim": 4, "heads": 2, "ff_dim": 7, "dropout": 0.0, **settings})
    return SASRec(config, TrainConfig(progress=False, seed=seed)).build(SEQ_ITEMS, SEQ_LEN)


def _layer_norm(x: np.ndarray, norm: torch.nn.LayerNorm) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)  # biased, as LayerNorm
    return (x - mean) / np.sqrt(var + norm.eps) * _np(norm.weight) + _np(norm.bias)


def _np(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().double().numpy()


def _sasrec_states(model: SASRec, history: np.ndarray) -> np.ndarray:
    """Every position's state of one-block SASRec, re-derived in numpy from its parameters:
    E = M[s] + P (positions anchored so the newest item has the last one); a pre-norm block
    x + Attn(LN(x)), then y + FFN(LN(y)); a final LayerNorm. Query i attends keys j <= i that
    are items (a pad query only itself); scaled dot products per head. The FFN activation is
    the model's: GELU by default, ReLU (the paper's) with ``activation="relu"``."""
    encoder = model.net.encoder
    (block,) = encoder.blocks
    batch, length = history.shape
    positions = np.arange(SEQ_LEN - length, SEQ_LEN)
    x = (
        _np(encoder.item_embedding.weight)[history]
        + _np(encoder.position_embedding.weight)[positions]
    )
    dim, heads = x.shape[-1], block.self_attn.num_heads
    head_dim = dim // heads
    w_in, b_in = _np(block.self_attn.in_proj_weight), _np(block.self_attn.in_proj_bias)
    h = _layer_norm(x, block.norm1)
    q, k, v = (
        h @ w_in[i * dim : (i + 1) * dim].T + b_in[i * dim : (i + 1) * dim] for i in range(3)
    )
    allowed = np.zeros((batch, length, length), dtype=bool)
    for b in range(batch):
        for i in range(length):
            for j in range(i + 1):
                allowed[b, i, j] = history[b, j] != PAD or j == i
    heads_out = []
    for head in range(heads):
        cols = slice(head * head_dim, (head + 1) * head_dim)
        logits = q[..., cols] @ np.swapaxes(k[..., cols], 1, 2) / math.sqrt(head_dim)
        logits = np.where(allowed, logits, -np.inf)
        weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
        weights /= weights.sum(axis=-1, keepdims=True)
        heads_out.append(weights @ v[..., cols])
    attended = np.concatenate(heads_out, axis=-1) @ _np(block.self_attn.out_proj.weight).T
    y = x + attended + _np(block.self_attn.out_proj.bias)
    hidden = _layer_norm(y, block.norm2) @ _np(block.linear1.weight).T + _np(block.linear1.bias)
    if model.config.activation == "relu":
        hidden = np.maximum(hidden, 0.0)
    else:
        hidden = 0.5 * hidden * (1 + erf(hidden / math.sqrt(2)))  # exact GELU
    y = y + hidden @ _np(block.linear2.weight).T + _np(block.linear2.bias)
    return _layer_norm(y, encoder.norm)


HISTORIES = np.array([[PAD, 1, 3, 2], [4, 0, 0, 1], [PAD, PAD, PAD, 3]])


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_sasrec_forward_and_scores_by_a_numpy_rederivation(activation: str) -> None:
    model = _sasrec(activation=activation)
    expected = _sasrec_states(model, HISTORIES)
    items = _np(model.net.encoder.item_embedding.weight)[:SEQ_ITEMS]  # the input table
    # Scores: the last state against the same item table (no output layer), every item ranked.
    scores = model.score(torch.tensor(HISTORIES))
    np.testing.assert_allclose(scores.double().numpy(), expected[:, -1] @ items.T, atol=1e-5)
    states = model.net.encoder(torch.tensor(HISTORIES), all_positions=True)
    real = HISTORIES != PAD
    np.testing.assert_allclose(_np(states)[real], expected[real], atol=1e-5)
    # One item table: nothing else in the network has a row per item.
    per_item = [name for name, p in model.net.named_parameters() if p.shape[0] in (5, 6)]
    assert per_item == ["encoder.item_embedding.weight"]


def test_sasrec_full_cross_entropy_loss_matches_the_rederivation() -> None:
    model = _sasrec()
    targets = np.array([4, 2, 0])
    logits = (
        _sasrec_states(model, HISTORIES)[:, -1]
        @ _np(model.net.encoder.item_embedding.weight)[:SEQ_ITEMS].T
    )
    expected = -_log_softmax(logits)[np.arange(3), targets].mean()
    with torch.no_grad():
        loss = model.net.eval()(torch.tensor(HISTORIES), torch.tensor(targets))
    assert float(loss) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(("heads", "blocks"), [(1, 1), (2, 2)])
def test_sasrec_never_looks_ahead(heads, blocks) -> None:
    model = _sasrec(heads=heads, blocks=blocks)
    encoder = model.net.eval().encoder
    history = torch.tensor([[PAD, 1, 3, 2], [4, 0, 0, 1]])
    with torch.no_grad():
        before = encoder(history, all_positions=True)
        for position in range(1, SEQ_LEN):
            changed = history.clone()
            changed[:, position] = (changed[:, position] + 1) % SEQ_ITEMS
            after = encoder(changed, all_positions=True)
            real = history[:, :position] != PAD
            torch.testing.assert_close(after[:, :position][real], before[:, :position][real])
            assert (after[:, position:] - before[:, position:]).abs().amax() > 1e-3
            # the last-position path the scores use agrees with the all-positions one
            torch.testing.assert_close(encoder(changed), after[:, -1], rtol=1e-5, atol=1e-5)


def test_sasrec_padding_changes_no_real_position() -> None:
    model = _sasrec(blocks=2)
    encoder = model.net.eval().encoder
    padded = torch.tensor([[PAD, PAD, 1, 3], [4, 0, 2, 1]])
    with torch.no_grad():
        before = encoder(padded, all_positions=True)
        # the same history without its pads, alone: the same states (positions anchored at the
        # newest item, so trimming pads moves no position)
        alone = encoder(torch.tensor([[1, 3]]), all_positions=True)
        torch.testing.assert_close(before[0, 2:], alone[0], rtol=1e-5, atol=1e-6)
        # the pad's embedding and the pad slots' positions never reach a real position (not a
        # constant shift: every LayerNorm would remove one, whatever the attention reads)
        shift = torch.tensor([3.0, -1.0, 0.5, 2.0])
        encoder.item_embedding.weight[PAD] += shift
        encoder.position_embedding.weight[:2] -= shift
        after = encoder(padded, all_positions=True)
    torch.testing.assert_close(after[0, 2:], before[0, 2:], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(after[1], before[1]), "row 1 uses positions 0, 1: it must change"


def test_sasrec_dropout_is_off_when_scoring_and_the_mode_is_restored() -> None:
    model = _sasrec(dropout=0.5)
    model.net.train()
    with torch.no_grad():
        expected = model.net.eval().logits(torch.tensor(HISTORIES))
    model.net.train()
    first = model.score(torch.tensor(HISTORIES))
    torch.testing.assert_close(first, expected)
    torch.testing.assert_close(model.score(torch.tensor(HISTORIES)), first)
    assert model.net.training, "score must put back the mode it found"
    # ... while in training mode the same forward does drop units
    with torch.no_grad():
        assert not torch.allclose(model.net.logits(torch.tensor(HISTORIES)), expected)


def test_sasrec_a_users_scores_do_not_depend_on_the_batch() -> None:
    model = _sasrec(blocks=2, dropout=0.3)
    together = model.score(torch.tensor(HISTORIES))
    for row, history in enumerate(model.windows([[1, 3, 2], [4, 0, 0, 1], [3]])[0]):
        alone = model.score(torch.tensor(history[None]))
        torch.testing.assert_close(alone[0], together[row], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------- next-item data: train vs held out
def _sequences(tails: dict[int, list[int]]) -> UserSequences:
    heads = {0: [0, 1, 2, 3, 4], 1: [1, 2, 1, 5, 6], 2: [2, 6, 7], 3: [7, 7, 3, 1]}
    lists = {user: heads[user] + tails[user] for user in heads}
    return UserSequences.from_lists(lists, items=Vocabulary.from_ids(range(8)))


# Each user's last two items are valid and test targets (leave-one-out); two versions of them.
TAILS = {0: [5, 6], 1: [0, 3], 2: [1, 4], 3: [6, 0]}
OTHER_TAILS = {0: [7, 7], 1: [7, 4], 2: [0, 0], 3: [2, 5]}


@pytest.mark.parametrize("all_positions", [False, True])
def test_sasrec_training_is_seeded_and_never_reads_valid_or_test(all_positions) -> None:
    def fit(tails, seed=3):
        data = _sequences(tails).leave_one_out(max_len=4)
        config = SASRecConfig(dim=8, all_positions=all_positions)
        training = TrainConfig(progress=False, seed=seed, epochs=3, batch_size=4, lr=1e-2)
        return SASRec(config, training).fit(data).net.state_dict()

    first = fit(TAILS)
    for name, value in fit(TAILS).items():
        torch.testing.assert_close(value, first[name], rtol=0, atol=0)  # seeded
    for name, value in fit(OTHER_TAILS).items():  # other valid/test items: the same training
        torch.testing.assert_close(value, first[name], rtol=0, atol=0)
    other_seed = fit(TAILS, seed=4)
    assert not torch.equal(
        other_seed["encoder.item_embedding.weight"], first["encoder.item_embedding.weight"]
    )


def test_most_popular_counts_train_targets_only_with_ties_to_the_lower_index() -> None:
    # Train targets (leave-one-out, at least one item before): user 0 -> 1, 2, 3, 4;
    # user 1 -> 2, 1, 5, 6; user 2 -> 6, 7; user 3 -> 7, 3, 1. Valid/test targets are the tails.
    expected = [0, 3, 2, 2, 1, 1, 2, 2]
    for tails in (TAILS, OTHER_TAILS):
        data = _sequences(tails).leave_one_out(max_len=4)
        model = MostPopular(training=TrainConfig(progress=False)).fit(data)
        np.testing.assert_array_equal(model.net.counts.numpy(), expected)
    # ranking 1 (3), then 2, 3, 6, 7 tied at 2 (lower index first), then 4, 5, 0
    items, _ = model.recommend([[0]], k=8, exclude_seen=False)
    np.testing.assert_array_equal(items, [[1, 2, 3, 6, 7, 4, 5, 0]])
    items, _ = model.recommend([[1, 3]], k=3, exclude_seen=True)
    np.testing.assert_array_equal(items, [[2, 6, 7]])


# ---------------------------------------------------------------------------------- Popularity
def test_popularity_counts_train_only_and_the_test_protocol_masks_train_and_valid() -> None:
    train = np.array([[1, 1, 0, 0, 0], [1, 0, 1, 0, 0], [1, 0, 0, 1, 0], [0, 1, 0, 0, 0]])
    valid = np.array([[0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [1, 0, 0, 0, 1]])
    test = np.array([[0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0]])
    model = Popularity().fit(sp.csr_matrix(train, dtype=np.float32), sp.csr_matrix(valid))
    # counted from train alone: valid would make item 4 (4 valid users) the most popular
    np.testing.assert_array_equal(model.item_counts, [3, 2, 1, 1, 0])
    again = Popularity().fit(sp.csr_matrix(train, dtype=np.float32))
    np.testing.assert_array_equal(again.item_counts, model.item_counts)
    # Test: input train, train + valid masked. Ranking 0, 1, 2, 3 (2 and 3 tie: 2 first), 4.
    # user 0 (seen 0, 1, 4) -> 2, 3: hit at 1; user 1 (seen 0, 2, 4) -> 1, 3: hit at 2 only;
    # user 2 (seen 0, 3, 4) -> 1, 2: hit at 1; user 3 (seen 1 in train, 0 and 4 in valid)
    # -> 2, 3: hit at 1 (with valid unmasked it would get item 0 first: a miss).
    task = EvalTask.test(sp.csr_matrix(train), sp.csr_matrix(valid), sp.csr_matrix(test))
    result = task.evaluate(model.score, ks=(1, 2), metrics=("recall",))
    np.testing.assert_array_equal(result.per_user["recall@1"], [1, 0, 1, 1])
    np.testing.assert_array_equal(result.per_user["recall@2"], [1, 1, 1, 1])
    items, _ = model.recommend(sp.csr_matrix(train[3:] + valid[3:]), k=2)
    np.testing.assert_array_equal(items, [[2, 3]])
