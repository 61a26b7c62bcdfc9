"""Data settings that nothing reads are named: ``data.ratios`` under a split that does not
share by them, and a table's column names, filters and split on data that holds its own (the
demo, the papers' folders). Warnings, not refusals: an experiment may set them for all its
configs, some of which read them."""

from __future__ import annotations

import warnings

import pytest

from recdiff.config.loading import load_config
from recdiff.train.run import _warn_unread_data_settings


@pytest.mark.parametrize(
    ("preset", "sets", "why"),
    [
        ("sasrec-beauty", [], "data.split=leave_one_out holds out each user's last two items"),
        # a sequence file's default split becomes leave-one-out once the model is known
        (
            "mostpop-zhihu",
            ["data.format=sequences", "data.source=x.txt"],
            "data.split=leave_one_out holds out each user's last two items",
        ),
        ("diffrec-ml1m", [], "a diffrec folder (data.format=diffrec) holds its own split"),
        ("dreamrec-zhihu", [], "a dreamrec folder (data.format=dreamrec) holds its own split"),
        ("demo-sasrec", [], "the demo data has its own split"),
    ],
)
def test_ratios_that_no_split_reads_are_named(preset: str, sets: list[str], why: str) -> None:
    """Found by the trial: ``--set data.ratios=...`` under leave-one-out trained as if unset.
    A warning, not a refusal, as for data.max_len: an experiment may set it for all its
    configs, some of which split by it."""
    config = load_config(preset, [*sets, "data.ratios=[0.8, 0.1, 0.1]"])
    with pytest.warns(UserWarning) as caught:
        _warn_unread_data_settings(config)
    assert [str(w.message) for w in caught] == [f"data.ratios ([0.8, 0.1, 0.1]): {why}: ignored"]


def test_ratios_a_split_reads_and_the_defaults_are_not_named() -> None:
    sets = ["data.format=sequences", "data.source=x.txt", "data.ratios=[0.8, 0.1, 0.1]"]
    configs = [
        load_config("demo-ease", [*sets, f"data.split={s}"]) for s in ("random", "user_temporal")
    ]
    configs += [load_config(p) for p in ("sasrec-beauty", "diffrec-ml1m", "demo-diffrec")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for config in configs:
            _warn_unread_data_settings(config)


@pytest.mark.parametrize(
    ("preset", "sets", "named"),
    [
        (
            "demo-popularity",
            ["data.k_core=5"],
            ["data.k_core (5): the demo data has its own users, items and split: ignored"],
        ),
        (
            "diffrec-ml1m",
            ["data.min_rating=4", "data.split=random", "data.duplicates=first"],
            [
                f"data.{key}: a diffrec folder (data.format=diffrec) holds its own users, items "
                "and split: ignored"
                for key in ("min_rating (4.0)", "split ('random')")
            ],  # a folder's own files may repeat a pair: data.duplicates is read
        ),
        (
            "dreamrec-zhihu",
            ["data.user_col=uid"],
            [
                "data.user_col ('uid'): a dreamrec folder (data.format=dreamrec) holds its own "
                "users, items and split: ignored"
            ],
        ),
        (
            "demo-ease",
            ["data.split=leave_one_out"],
            [
                "data.split ('leave_one_out'): the demo data has its own users, items and "
                "split: ignored"
            ],
        ),
    ],
)
def test_table_settings_that_data_with_its_own_split_never_reads_are_named(
    preset: str, sets: list[str], named: list[str]
) -> None:
    """Found by a user's walk: ``--set data.k_core=5`` (or a split, a filter, a column) on the
    demo or a paper's folder trained exactly as without it, without a word."""
    with pytest.warns(UserWarning) as caught:
        _warn_unread_data_settings(load_config(preset, sets))
    assert [str(w.message) for w in caught] == named


def test_a_next_item_models_demo_split_and_pinned_defaults_are_not_named() -> None:
    configs = [load_config(p) for p in ("demo-sasrec", "demo-dreamrec", "diffrec-ml1m-search")]
    configs.append(load_config("dreamrec-zhihu-search"))
    assert configs[0].data.split == "leave_one_out"  # as the model splits the demo sequences
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for config in configs:
            _warn_unread_data_settings(config)
