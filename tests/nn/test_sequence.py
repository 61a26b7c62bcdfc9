import pytest
import torch

from recdiff.nn.sequence import HistoryEncoder, attention_mask, trim_left_padding


def test_attention_mask_hand_case():
    # one history [pad, a, b]: query 0 (pad) sees only itself; 1 sees itself; 2 sees 1 and 2
    mask = attention_mask(torch.tensor([[True, False, False]]), heads=1)[0]
    allowed = ~mask
    assert allowed.tolist() == [
        [True, False, False],
        [False, True, False],
        [False, True, True],
    ]


def test_attention_mask_of_the_last_query_is_the_full_masks_last_row():
    is_pad = torch.tensor([[True, False, False], [True, True, False], [False, False, False]])
    last = attention_mask(is_pad, heads=2, last_only=True)
    assert last.shape == (6, 1, 3)
    assert torch.equal(last, attention_mask(is_pad, heads=2)[:, -1:])
    assert (~last[2, 0]).tolist() == [False, False, True]  # [pad, pad, a]: a sees only itself


def test_attention_mask_repeats_per_head():
    mask = attention_mask(torch.tensor([[False, False], [True, False]]), heads=3)
    assert mask.shape == (6, 2, 2)
    assert torch.equal(mask[0], mask[2]) and torch.equal(mask[3], mask[5])
    assert not torch.equal(mask[0], mask[3])


@pytest.fixture
def encoder():
    torch.manual_seed(0)
    return HistoryEncoder(n_items=20, dim=8, max_len=5, blocks=2, heads=2, dropout=0.0).eval()


def test_output_depends_on_items_not_on_extra_padding(encoder):
    pad = encoder.pad_id
    long = torch.tensor([[pad, pad, pad, 3, 7]])
    short = torch.tensor([[pad, 3, 7]])  # same items at the same (end-anchored) positions
    assert torch.allclose(encoder(long), encoder(short), atol=1e-6)


def test_pad_embedding_does_not_leak_into_real_histories(encoder):
    pad = encoder.pad_id
    history = torch.tensor([[pad, pad, 1, 2, 3]])
    before = encoder(history)
    with torch.no_grad():
        encoder.item_embedding.weight[pad] += 5.0
    assert torch.allclose(encoder(history), before, atol=1e-6)


def test_order_matters_and_empty_history_is_finite(encoder):
    pad = encoder.pad_id
    a = encoder(torch.tensor([[pad, pad, pad, 1, 2]]))
    b = encoder(torch.tensor([[pad, pad, pad, 2, 1]]))
    assert not torch.allclose(a, b)
    empty = encoder(torch.full((2, 5), pad))
    assert torch.isfinite(empty).all()


def test_invalid_settings_and_lengths():
    with pytest.raises(ValueError, match="must divide"):
        HistoryEncoder(10, dim=6, max_len=4, heads=4)
    encoder = HistoryEncoder(10, dim=4, max_len=3)
    with pytest.raises(ValueError, match="exceed max_len"):
        encoder(torch.zeros(1, 4, dtype=torch.long))


def test_all_positions_are_causal_and_end_with_the_summary(encoder):
    # The state at position j depends on the items up to j only; the last one is forward's.
    pad = encoder.pad_id
    history = torch.tensor([[pad, 4, 9, 2, 6]])
    states = encoder(history, all_positions=True)
    assert states.shape == (1, 5, 8)
    assert torch.allclose(states[:, -1], encoder(history), atol=1e-6)
    for j in range(1, 5):
        changed = history.clone()
        changed[0, j] = 11
        after = encoder(changed, all_positions=True)
        assert torch.allclose(after[:, 1:j], states[:, 1:j], atol=1e-6)  # earlier: unchanged
        assert not torch.allclose(after[:, j], states[:, j], atol=1e-4)  # its own: changed


def test_trim_left_padding_drops_only_columns_that_are_padding_in_every_row(encoder):
    pad = encoder.pad_id
    batch = torch.tensor([[pad, pad, pad, 3, 7], [pad, pad, 1, 2, 4], [pad, pad, pad, pad, pad]])
    trimmed = trim_left_padding(batch, pad)
    assert trimmed.tolist() == [[pad, 3, 7], [1, 2, 4], [pad, pad, pad]]
    full = torch.tensor([[1, 2, 3], [pad, 4, 5]])
    assert trim_left_padding(full, pad) is full  # nothing to drop
    assert trim_left_padding(torch.full((2, 4), pad), pad).shape == (2, 1)  # all empty: one column
    # The encoder gives the same states for every row, empty ones included.
    torch.testing.assert_close(encoder(trimmed), encoder(batch), atol=1e-6, rtol=1e-6)
    states = encoder(batch, all_positions=True)[:, -3:]
    torch.testing.assert_close(encoder(trimmed, all_positions=True), states, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("blocks,heads", [(1, 1), (2, 2), (3, 4)])
def test_the_summary_computes_only_the_last_query_yet_equals_every_positions_pass(blocks, heads):
    # forward() runs the last block for the last position only; its state and its gradients
    # must be those of the full pass over every position (pads, an empty history included).
    torch.manual_seed(1)
    encoder = HistoryEncoder(30, dim=16, max_len=12, blocks=blocks, heads=heads, dropout=0.0)
    pad = encoder.pad_id
    history = torch.randint(0, 30, (6, 12))
    history[0, :11] = pad  # one item
    history[1] = pad  # empty
    history[2, :5] = pad
    full = encoder(history, all_positions=True)[:, -1]
    last = encoder(history)
    torch.testing.assert_close(last, full, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(last)
    grads = [
        torch.autograd.grad((out * weights).sum(), encoder.parameters(), allow_unused=True)
        for out in (full, last)
    ]
    for a, b in zip(*grads, strict=True):
        if a is None:
            assert b is None
        else:
            torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
