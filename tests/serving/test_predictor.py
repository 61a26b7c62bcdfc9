"""The Predictor's id parsing (what a caller of the Python API passes as ids) and the note on
lists shorter than k."""

from __future__ import annotations

import numpy as np
import pytest

from recdiff.data.errors import UnknownIdError
from recdiff.serving.predictor import Predictor
from recdiff.serving.recommendations import Recommendations, shortfall_note


@pytest.fixture(scope="module")
def predictor(run_dir):
    return Predictor.load(run_dir)


def test_non_integral_item_ids_are_refused_not_truncated(predictor):
    # int(1.5) is 1: the history [1.5, 2.7] would silently be scored as items 1 and 2.
    with pytest.raises(ValueError, match=r"item ids of this run are integers, got \[1.5, 2.7\]"):
        predictor.recommend(history=[1.5, 2.7], k=3)
    # Integral floats (a pandas column read as float) and text ids still name their items.
    expected = predictor.recommend(history=[1, 2], k=3).items
    assert predictor.recommend(history=np.array([1.0, 2.0]), k=3).items == expected
    assert predictor.recommend(history=["1", " 2"], k=3).items == expected


def test_string_ids_lose_surrounding_whitespace_like_integer_ones(predictor, named_predictor):
    named = named_predictor
    assert named.parse_user(" u0003\t") == "u0003" and predictor.parse_user(" 3\t") == 3
    assert named.parse_users([" u0003", "u0004 "]).tolist() == ["u0003", "u0004"]
    assert named.recommend(user=named.parse_user(" u0003 "), k=4) == named.recommend(
        user="u0003", k=4
    )
    assert named.recommend(history=[" i001", "i002 "], k=4) == named.recommend(
        history=["i001", "i002"], k=4
    )
    with pytest.raises(UnknownIdError) as caught:
        named.recommend(history=["i001", " i999 "], k=4)
    assert str(caught.value) == (
        "1 item id(s) not in the catalogue: [' i999 ']; remove them or pass "
        "ignore_unknown=True (--ignore-unknown)"
    )
    assert caught.value.unknown == [" i999 "]  # as given


def test_a_padded_string_id_that_the_data_holds_is_looked_up_as_given(named_predictor):
    from recdiff.data import Vocabulary
    from recdiff.serving.predictor import Predictor

    base = named_predictor
    users = [f"u{i:04d}" for i in range(len(base.users))]
    users[3] = " u0003 "  # the raw data's id itself carries the spaces
    padded = Predictor(
        base.model,
        Vocabulary.from_ids(users),
        base.items,
        base.inputs,
        base.seen,
        base.config,
        base.metrics,
    )
    assert padded.parse_user(" u0003 ") == " u0003 "
    assert padded.parse_users([" u0003 ", " u0004 "]).tolist() == [" u0003 ", "u0004"]
    row = int(padded.users.index([" u0003 "])[0])  # the vocabulary orders its ids
    assert padded.recommend(user=padded.parse_user(" u0003 "), k=4) == base.recommend(
        user=base.users.ids[row], k=4
    )


def test_a_history_that_leaves_fewer_than_k_items_says_why(predictor):
    everything = predictor.items.ids.tolist()
    assert predictor.recommend(history=everything, k=5) == Recommendations(
        [],
        [],
        [],
        "every catalogue item is already in the history; pass exclude_seen=False to rank them",
    )
    most = everything[:-3]
    ranked = predictor.recommend(history=most, k=len(everything), exclude_seen=False)
    short = predictor.recommend(history=most, k=5)
    assert short.items == [i for i in ranked.items if i in everything[-3:]]  # the 3 there are
    assert short.scores == [
        s for i, s in zip(ranked.items, ranked.scores, strict=True) if i in short.items
    ]
    assert short.note == (
        "only 3 catalogue items are not already in the history; pass exclude_seen=False to "
        "rank the others too"
    )
    assert predictor.recommend(history=most, k=3).note is None  # k came back
    assert predictor.recommend(history=everything, k=5, exclude_seen=False).note is None


DECLINED = "for this input; it gives the others no score (e.g. items it never trained on)"


@pytest.mark.parametrize(
    ("returned", "k", "unseen", "note"),
    [
        (5, 5, 500, None),
        (0, 5, 0, "every catalogue item is already in the history; REMEDY to rank them"),
        (
            1,
            5,
            1,
            "only 1 catalogue item is not already in the history; REMEDY to rank the others too",
        ),
        (2, 5, 400, f"the model ranks only 2 of the 400 catalogue items left {DECLINED}"),
        (0, 5, 400, f"the model ranks none of the 400 catalogue items left {DECLINED}"),
        # Fewer unseen items than k, and the model declines some of those too: including the
        # seen items would not fill the list, so the note must not promise it.
        (1, 5, 3, f"the model ranks only 1 of the 3 catalogue items left {DECLINED}"),
        # Nothing excluded (seen items included) and k above the catalogue's size.
        (500, 600, 500, "the catalogue holds only 500 items"),
    ],
)
def test_shortfall_notes(returned, k, unseen, note):
    assert shortfall_note(returned, k, unseen, "REMEDY", catalogue=500) == note


@pytest.mark.parametrize("typed", ["1_0", "١٠", "1 0", "0x10", "10.0", "", "+", "True"])
def test_integer_ids_typed_as_text_are_ascii_digits(predictor, typed):
    # int() reads "1_0" and Arabic-Indic "١٠" as 10: a request for user 10 nobody sent.
    with pytest.raises(ValueError, match="user ids of this run are integers"):
        predictor.parse_user(typed)
    with pytest.raises(ValueError, match="user ids of this run are integers"):
        predictor.parse_users(["3", typed])
    with pytest.raises(ValueError, match="item ids of this run are integers"):
        predictor.recommend(history=["3", typed], k=3)


def test_signed_and_padded_ascii_ids_still_parse(predictor):
    assert predictor.parse_user("+10") == predictor.parse_user(" 10\t") == 10
    assert predictor.parse_users(["0010", "-1"]).tolist() == [10, -1]
    assert predictor.recommend(history=["+1", " 2 "], k=3) == predictor.recommend(
        history=[1, 2], k=3
    )


def test_the_python_api_parses_user_ids_like_the_cli_and_http(predictor, named_predictor):
    assert predictor.recommend(user="3", k=4) == predictor.recommend(user=3, k=4)
    assert predictor.recommend(user=np.int64(3), k=4) == predictor.recommend(user=3, k=4)
    named = named_predictor
    assert named.recommend(user=" u0003 ", k=4) == named.recommend(user="u0003", k=4)
    with pytest.raises(ValueError, match="user ids of this run are integers, got '1_0'"):
        predictor.recommend(user="1_0", k=4)


@pytest.mark.parametrize("history", ["123", b"123", 123])
def test_a_history_that_is_not_a_list_is_refused(predictor, history):
    # A string is a sequence: "123" would be scored as the items 1, 2 and 3.
    with pytest.raises(TypeError, match=r"history must be a list of item ids.*pass a list"):
        predictor.recommend(history=history, k=3)


def test_booleans_are_not_ids(predictor, named_predictor):
    # True == 1 to Python: history [True, 2] would be scored as the items 1 and 2.
    booleans = r"item ids cannot be booleans \(true/false\), got \[True\]"
    with pytest.raises(ValueError, match=booleans):
        predictor.recommend(history=[True, 2], k=3)
    with pytest.raises(ValueError, match="item ids cannot be booleans"):
        predictor.recommend(history=np.array([True, False]), k=3)
    with pytest.raises(ValueError, match="item ids cannot be booleans"):
        named_predictor.recommend(history=["i001", False], k=3)
    for parse in (predictor.parse_user, named_predictor.parse_user):
        with pytest.raises(ValueError, match="user ids cannot be booleans"):
            parse(True)
    with pytest.raises(ValueError, match="user ids cannot be booleans"):
        predictor.recommend(user=True, k=3)
    with pytest.raises(ValueError, match="user ids cannot be booleans"):
        predictor.parse_users([3, np.True_])


def test_a_half_precision_history_is_refused_not_rounded_to_other_items(predictor):
    """bfloat16 holds integers exactly only up to 256: a history [3, 257] given as a bfloat16
    tensor was read as items 3 and 256 (both real), a silently different list."""
    import torch

    assert torch.tensor([257], dtype=torch.bfloat16).item() == 256
    for dtype in (torch.bfloat16, torch.float16):
        history = torch.tensor([3, 257], dtype=dtype)
        with pytest.raises(TypeError, match=r"history came as .*float16 numbers"):
            predictor.recommend(history=history, k=3)
        with pytest.raises(TypeError, match=r"exclude_items came as"):
            predictor.recommend(history=[3], k=3, exclude_items=history)
    expected = predictor.recommend(history=[3, 257], k=3).items
    assert predictor.recommend(history=torch.tensor([3, 257]), k=3).items == expected
    assert predictor.recommend(history=torch.tensor([3.0, 257.0]), k=3).items == expected
