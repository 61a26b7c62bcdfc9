"""What a new user met with SASRec's Amazon Video file (``user item`` pairs, one interaction a
line), a format no preset reads as shipped, and with the runs trained on it.

Found by a trial on ``sasrec/Video.txt``: one malformed line among 287,107 pairs was blamed on
user 1 "on several lines" (advice that would corrupt the file); ``data.split=global_temporal``
given to a next-item model was dropped without a word (every other split is refused);
``--set "data.sep= "`` was read as null and fell back to commas; ``evaluate`` ordered its
columns alphabetically; and a Mult-VAE run's report listed train settings it never read.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.config import load_config
from recdiff.config.loading import ConfigError
from recdiff.data.errors import DataFormatError
from recdiff.data.sequence_readers import read_sequence_file
from recdiff.serving.report import build_report
from recdiff.train.run import run_training

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Six users, four interactions each, as SASRec's files hold them: one ``user item`` a line.
PAIRS = [(u, (u + t) % 9 + 1) for u in range(1, 7) for t in range(4)]


def _pairs_file(path: Path, extra: dict[int, str] | None = None) -> Path:
    lines = [f"{u} {i}" for u, i in PAIRS]
    for number, line in sorted((extra or {}).items()):
        lines.insert(number - 1, line)  # becomes line ``number``
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_pairs_file_reads_one_interaction_a_line(tmp_path: Path) -> None:
    sequences = read_sequence_file(_pairs_file(tmp_path / "pairs.txt"))
    assert sequences.users.ids.tolist() == [1, 2, 3, 4, 5, 6]
    first = sequences.item_idx[sequences.indptr[0] : sequences.indptr[1]]
    assert sequences.items.ids[first].tolist() == [2, 3, 4, 5]  # user 1's, in file order


@pytest.mark.parametrize("line", ["3 4 77", "3"])
def test_a_stray_line_among_pairs_is_named_not_blamed_on_the_first_user(
    tmp_path: Path, line: str
) -> None:
    path = _pairs_file(tmp_path / "pairs.txt", {10: line})
    with pytest.raises(DataFormatError) as error:
        read_sequence_file(path)
    message = str(error.value)
    assert "reads as SASRec's `user item` pairs (24 of 25 lines hold two ids)" in message
    assert f"1 line(s) hold {len(line.split())}: line 10;" in message
    assert "several lines" not in message  # before: "user 1 has several lines ... merge them"


def test_one_line_a_user_with_single_items_is_still_iclrecs_format(tmp_path: Path) -> None:
    """Lines of two ids whose users are all distinct are ICLRec's users with one item each, not
    pairs: a longer line among them is no error."""
    path = tmp_path / "users.txt"
    path.write_text("1 5\n2 6\n3 5 6 7\n4 7\n")
    sequences = read_sequence_file(path)
    assert sequences.lengths().tolist() == [1, 1, 3, 1]


def test_an_explicit_split_other_than_leave_one_out_is_refused_for_next_item_models(
    tmp_path: Path,
) -> None:
    source = ["data.format=sequences", f"data.source={_pairs_file(tmp_path / 'p.txt')}"]
    with pytest.raises(ConfigError, match=r"set data\.split=leave_one_out \(got 'global_temporal'"):
        load_config("mostpop-zhihu", [*source, "data.split=global_temporal"])
    # not given: the default (global_temporal for rows) becomes leave-one-out, as before;
    # and so does the global_temporal a resolved config of a DreamRec folder run lists
    assert load_config("mostpop-zhihu", source).data.split == "leave_one_out"
    assert load_config("dreamrec-zhihu-search", source).data.split == "leave_one_out"


def test_a_separator_of_spaces_or_a_tab_is_kept_not_read_as_null(tmp_path: Path) -> None:
    base = ["data.format=csv", f"data.source={tmp_path / 'x.csv'}"]
    assert load_config("demo-ease", [*base, "data.sep= "]).data.sep == " "
    assert load_config("demo-ease", [*base, "data.sep=\t"]).data.sep == "\t"
    assert load_config("demo-ease", [*base, "data.sep="]).data.sep is None  # empty: null


def test_evaluate_orders_columns_as_the_run_lists_its_metrics(tmp_path: Path) -> None:
    settings = ["--set", "eval.metrics=[recall,ndcg,hit_rate]", "--set", "eval.ks=[5]"]
    settings += ["--set", "train.metric=recall@5"]
    runner = CliRunner()
    trained = runner.invoke(
        app, ["train", "demo-popularity", "--quiet", "--runs-dir", str(tmp_path), *settings]
    )
    assert trained.exit_code == 0, trained.output
    (run,) = tmp_path.iterdir()
    shown = runner.invoke(app, ["evaluate", str(run)])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[0].split() == ["recall@5", "ndcg@5", "hit_rate@5"]


def test_a_multvae_report_says_its_train_section_is_not_what_it_read(tmp_path: Path) -> None:
    config = load_config("demo-multvae", ["train.epochs=1"])
    page = build_report(run_training(config, tmp_path, progress=False).directory)
    assert "Mult-VAE trains from its <code>model</code> settings" in page
    popularity = run_training(load_config("demo-popularity"), tmp_path / "p", progress=False)
    assert "Mult-VAE trains from" not in build_report(popularity.directory)
