"""Vocabulary: sorted deterministic ids, vectorised lookups, clear unknown-id errors, JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recdiff.data import DataFormatError, UnknownIdError, Vocabulary


def test_from_ids_sorts_and_deduplicates() -> None:
    vocab = Vocabulary.from_ids([30, 10, 20, 10])
    assert vocab.ids.tolist() == [10, 20, 30]
    assert len(vocab) == 3
    assert vocab.kind == "int"
    assert vocab.index([20, 10, 30, 30]).tolist() == [1, 0, 2, 2]
    assert vocab.index([20]).dtype == np.int64


def test_order_of_input_does_not_matter() -> None:
    a = Vocabulary.from_ids(["b", "c", "a"])
    b = Vocabulary.from_ids(iter(["a", "a", "c", "b"]))  # any iterable
    assert a == b
    assert a.kind == "str"
    assert a.index(["c", "a"]).tolist() == [2, 0]
    assert a.external([2, 0]).tolist() == ["c", "a"]


def test_unknown_ids_raise_listing_them_and_counting() -> None:
    vocab = Vocabulary.from_ids([1, 2, 3])
    with pytest.raises(UnknownIdError) as info:
        vocab.index([1, 7, 8, 7, 3])
    err = info.value
    assert isinstance(err, KeyError) and isinstance(err, ValueError)
    assert err.unknown == [7, 8]
    assert err.n_unknown == 2
    assert "[7, 8]" in str(err) and "missing='drop'" in str(err)


def test_unknown_error_shows_only_a_few_of_many() -> None:
    vocab = Vocabulary.range(3)
    with pytest.raises(UnknownIdError) as info:
        vocab.index(np.arange(100, 200))
    assert info.value.n_unknown == 100
    assert len(info.value.unknown) == 5
    assert "and 95 more" in str(info.value)


def test_type_mismatch_is_unknown_with_hint() -> None:
    with pytest.raises(UnknownIdError, match="holds int ids but str ids"):
        Vocabulary.from_ids([1, 2]).index(["1"])


def test_missing_drop_and_mask() -> None:
    vocab = Vocabulary.from_ids(["x", "y"])
    assert vocab.index(["y", "zz", "x"], missing="drop").tolist() == [1, 0]
    assert vocab.index(["y", "zz", "x"], missing="mask").tolist() == [1, -1, 0]
    assert vocab.contains(["y", "zz"]).tolist() == [True, False]
    assert "x" in vocab and "q" not in vocab and 3 not in vocab


def test_empty_vocabulary() -> None:
    vocab = Vocabulary.from_ids([])
    assert len(vocab) == 0
    assert vocab.index([], missing="raise").tolist() == []
    with pytest.raises(UnknownIdError):
        vocab.index([1])


def test_pandas_inputs_and_integral_floats() -> None:
    vocab = Vocabulary.from_ids(pd.Series([3.0, 1.0]))  # an int column pandas read as float
    assert vocab.kind == "int" and vocab.ids.tolist() == [1, 3]
    strs = Vocabulary.from_ids(pd.Series(["b", "a"], dtype="string"))
    assert strs.ids.tolist() == ["a", "b"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([1.5, 2.0], r"non-integral numbers such as \[1\.5\] at position\(s\) \[0\]"),
        ([1, None], r"1 ids are missing \(NaN/None\), first at position\(s\) \[1\]"),
        ([np.nan], r"1 ids are missing \(NaN/None\), first at position\(s\) \[0\]"),
        ([1, "a"], "all integers or all strings, got 'mixed-integer' values"),
        ([True, False], "all integers or all strings, got 'boolean' values"),
    ],
    ids=["float", "none", "nan", "mixed", "bool"],
)
def test_bad_ids_are_refused(bad: list[object], message: str) -> None:
    with pytest.raises(DataFormatError, match=message):
        Vocabulary.from_ids(bad)


@pytest.mark.parametrize(
    "ids",
    [np.array([2**64 - 1, 5], dtype=np.uint64), [2**64 - 1, 5], pd.Series([2**64 - 1, 5])],
    ids=["uint64", "python-ints", "series"],
)
def test_integers_beyond_int64_are_their_decimal_strings(ids: object) -> None:
    # int64 cannot hold 2**64 - 1: numpy wrapped it to -1 (another id) or overflowed. A text
    # file's such ids stay strings (canonical_ints), so these do too.
    vocab = Vocabulary.from_ids(ids)
    assert vocab.kind == "str" and vocab.ids.tolist() == ["18446744073709551615", "5"]
    small = Vocabulary.from_ids(np.array([7, 5], dtype=np.uint64))
    assert small.kind == "int" and small.ids.tolist() == [5, 7]


def test_trailing_nul_is_refused_not_merged() -> None:
    with pytest.raises(DataFormatError, match="NUL"):
        Vocabulary.from_ids(["a", "a\x00"])


def test_constructor_requires_sorted_unique() -> None:
    with pytest.raises(ValueError, match="from_ids"):
        Vocabulary([2, 1])


def test_external_out_of_range() -> None:
    with pytest.raises(IndexError, match=r"0\.\.1"):
        Vocabulary.range(2).external([2])
    with pytest.raises(IndexError):
        Vocabulary.range(2).external([-1])


def test_ids_are_read_only() -> None:
    vocab = Vocabulary.range(3)
    with pytest.raises(ValueError, match="read-only"):
        vocab.ids[0] = 5


@pytest.mark.parametrize("ids", [[5, 1, 3], ["u9", "u10", "u1"], []])
def test_json_round_trip_keeps_type(ids: list[object]) -> None:
    vocab = Vocabulary.from_ids(ids)
    text = vocab.to_json()
    back = Vocabulary.from_json(text)
    assert back == vocab and back.kind == vocab.kind
    assert Vocabulary.from_json(json.loads(text)) == vocab
    # ints stay JSON numbers, strings stay JSON strings: "1" and 1 are different ids
    stored = json.loads(text)["ids"]
    assert [type(x) for x in stored] == [type(y) for y in vocab.ids.tolist()]


def test_int_and_str_vocabularies_differ() -> None:
    assert Vocabulary.from_ids([1, 2]) != Vocabulary.from_ids(["1", "2"])
    assert Vocabulary.from_json('{"kind": "str", "ids": ["1", "2"]}').kind == "str"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"ids": [1]}', "exactly the keys 'kind' and 'ids'"),
        ('{"kind": "float", "ids": [1.5]}', "must be 'int' or 'str'.*got kind='float'"),
        ('{"kind": "int", "ids": ["1"]}', "ids of a 'int' vocabulary must be JSON ints"),
        ('{"kind": "int", "ids": [true]}', "ids of a 'int' vocabulary must be JSON ints"),
        ('{"kind": "int", "ids": [2, 1]}', "must be sorted and unique"),
    ],
)
def test_bad_json_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Vocabulary.from_json(text)


@given(st.lists(st.integers(-(2**40), 2**40), max_size=50))
def test_index_external_round_trip_property(ids: list[int]) -> None:
    vocab = Vocabulary.from_ids(ids)
    assert vocab.external(vocab.index(ids)).tolist() == ids
    assert np.all(np.diff(vocab.ids) > 0)


_NO_NUL = st.characters(exclude_characters="\x00")  # numpy strings cannot end in NUL (refused)


@given(st.lists(st.text(alphabet=_NO_NUL, min_size=1, max_size=4), max_size=30))
def test_string_round_trip_property(ids: list[str]) -> None:
    vocab = Vocabulary.from_ids(ids)
    assert vocab.external(vocab.index(ids)).tolist() == ids
    assert Vocabulary.from_json(vocab.to_json()) == vocab


def test_float_ids_that_may_have_been_rounded_are_refused() -> None:
    """float16 holds integers exactly only up to 2048 and float32 up to 2**24: id 2049 stored
    as float16 reads back as 2048, another id, so such columns are refused rather than read."""
    from recdiff.data.vocab import as_id_array, refuse_rounded_ids

    assert np.float16(2049) == 2048  # the rounding this guards against
    with pytest.raises(DataFormatError, match="float16 numbers, which hold integers exactly"):
        as_id_array(np.array([1, 2], dtype=np.float16))
    with pytest.raises(DataFormatError, match="float32 numbers up to 16777218"):
        as_id_array(np.array([3, 2**24 + 2], dtype=np.float32))
    assert as_id_array(np.array([3, 2**24], dtype=np.float32)).tolist() == [3, 2**24]
    assert as_id_array(pd.Series([7.0, 9.0])).tolist() == [7, 9]  # float64: exact to 2**53
    refuse_rounded_ids(np.zeros(0, dtype=np.float16), "ids")  # nothing given, nothing rounded
    refuse_rounded_ids([1.0, 2.0], "ids")  # Python floats are float64
