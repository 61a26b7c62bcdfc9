"""Serving next-item runs: the predictor, export and the HTTP service on a SASRec demo run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.config import load_config
from recdiff.serving.predictor import Predictor
from recdiff.serving.recommendations import EMPTY_INPUT_NOTE
from recdiff.serving.sequence_predictor import EMPTY_SEQUENCE_NOTE, SequencePredictor
from recdiff.train.run import run_training

DAMAGED = "looks damaged: re-train the run or restore the folder from a backup"

FAST = ["train.epochs=3", "train.eval_every=3", "model.dim=16"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    runs = tmp_path_factory.mktemp("sequence-runs")
    return run_training(load_config("demo-sasrec", FAST), runs, progress=False).directory


@pytest.fixture(scope="module")
def predictor(run_dir):
    return Predictor.load(run_dir)


def test_load_picks_the_sequence_predictor(predictor):
    assert isinstance(predictor, SequencePredictor)
    assert predictor.model.model_name == "sasrec"


def test_known_user_is_served_from_the_whole_sequence(predictor):
    user = predictor.users.ids[5]
    sequence = predictor.sequence_items[predictor.indptr[5] : predictor.indptr[6]]
    expected, _ = predictor.model.recommend([sequence], k=10, exclude_seen=True)
    got = predictor.recommend(user=user, k=10)
    assert got.items == predictor.items.external(expected[0]).tolist()
    assert not set(got.items) & set(predictor.items.external(sequence).tolist())


def test_new_history_keeps_order_and_repeats(predictor):
    ids = predictor.items.ids
    history = [ids[3], ids[7], ids[3]]
    got = predictor.recommend(history=history, k=5, exclude_seen=False)
    expected, _ = predictor.model.recommend([[3, 7, 3]], k=5, exclude_seen=False)
    assert got.items == ids[expected[0]].tolist()
    reordered = predictor.recommend(history=[ids[3], ids[3], ids[7]], k=5, exclude_seen=False)
    assert reordered.scores != got.scores  # order is what a sequence model reads


def test_unknown_items_and_empty_histories(predictor):
    known = predictor.items.ids[0]
    with pytest.raises(KeyError, match="not in the catalogue"):
        predictor.recommend(history=[known, 10**9], k=3)
    recs = predictor.recommend(history=[known, 10**9], k=3, ignore_unknown=True)
    assert recs.unknown_items == [10**9] and len(recs.items) == 3
    # Text (or 1.5) where the ids are integers is no item of the catalogue: an error naming the
    # type, and, with ignore_unknown, dropped like any unknown id (it was an error either way).
    with pytest.raises(ValueError, match=r"item ids of this run are integers, got \[.zz.\]"):
        predictor.recommend(history=[known, "zz"], k=3)
    dropped = predictor.recommend(history=[known, "zz", 1.5], k=3, ignore_unknown=True)
    assert dropped.unknown_items == ["zz", 1.5]
    assert dropped.items == predictor.recommend(history=[known], k=3).items
    with pytest.raises(ValueError, match="none of the history's 1 item id"):
        predictor.recommend(history=["zz"], k=3, ignore_unknown=True)
    with pytest.raises(ValueError, match="history is empty"):
        predictor.recommend(history=[], k=3)
    with pytest.raises(KeyError, match="not among"):
        predictor.recommend(user=10**9, k=3)


def test_batched_queries_equal_single_ones(predictor):
    users = predictor.users.ids[:6]
    queries = [predictor.query(user=u) for u in users]
    together = predictor.recommend_queries(queries, [5] * len(users))
    one_by_one = [predictor.recommend(user=u, k=5) for u in users]
    assert [r.items for r in together] == [r.items for r in one_by_one]
    assert np.allclose([r.scores for r in together], [r.scores for r in one_by_one], atol=1e-5)


def test_evaluate_reproduces_the_run(predictor):
    results = predictor.evaluate()
    assert results["test"] == pytest.approx(predictor.metrics["test"])


def test_http_service_answers_like_the_python_api(run_dir, predictor, serve_app):
    pytest.importorskip("fastapi")
    from recdiff.serving.service import create_app

    ids = predictor.items.ids
    with serve_app(create_app(run_dir)) as http:
        answer = http.post("/recommend", json={"history": [int(ids[1]), int(ids[2])], "k": 4})
        assert answer.status_code == 200
        expected = predictor.recommend(history=[ids[1], ids[2]], k=4)
        assert answer.json()["items"] == expected.items
        user = int(predictor.users.ids[0])
        answer = http.post("/recommend", json={"user": user, "k": 4})
        assert answer.json()["items"] == predictor.recommend(user=user, k=4).items
        unknown = http.post("/recommend", json={"history": [10**9], "k": 4})
        assert unknown.status_code == 422 and "not in the catalogue" in unknown.text


def test_the_service_says_the_metrics_are_averaged_over_examples(run_dir, predictor, serve_app):
    """One target per example: all_users and test_users agree, and GET /model said all_users."""
    pytest.importorskip("fastapi")
    from recdiff.serving.service import create_app

    assert predictor.metrics["averaging"] == "all_users"
    with serve_app(create_app(run_dir)) as http:
        metrics = http.get("/model").json()["metrics"]
    assert metrics["averaging"] == "examples"
    assert metrics["averaging_description"] == (
        "over examples, one target each (all_users and test_users agree)"
    )
    assert metrics["test"] == predictor.metrics["test"]


def test_a_run_without_user_ids_answers_user_requests_with_a_422(predictor, serve_app):
    pytest.importorskip("fastapi")
    from recdiff.data import Vocabulary
    from recdiff.serving.service import create_app

    # As DreamRec's example files load: next-item examples, no user ids.
    examples_only = SequencePredictor(
        predictor.model,
        Vocabulary.range(0),
        predictor.items,
        np.zeros(1, np.int64),
        np.zeros(0, np.int64),
        predictor.config,
        predictor.metrics,
    )
    with serve_app(create_app(examples_only)) as http:
        answer = http.post("/recommend", json={"user": 3, "k": 4})
        assert answer.status_code == 422, answer.text
        assert "without user ids; recommend from a history" in answer.json()["detail"]
        assert http.post("/recommend", json={"history": [3], "k": 4}).status_code == 200


@pytest.fixture(scope="module")
def dreamrec(tmp_path_factory):
    fast = ["model.dim=8", "model.hidden_dims=[16]", "model.diffusion.steps=8"]
    config = load_config("demo-dreamrec", ["train.epochs=1", "train.eval_every=1", *fast])
    runs = tmp_path_factory.mktemp("dreamrec-runs")
    return Predictor.load(run_training(config, runs, progress=False).directory)


def test_dreamrec_answers_do_not_depend_on_the_other_rows_of_a_batch(dreamrec, tmp_path):
    # DreamRec samples from noise: with one generator for the batch, a row's noise would depend
    # on its place in it, so concurrent requests (and export batches) would change each other's
    # answers. Scores agree up to float rounding (batched matrix products).
    users = dreamrec.users.ids[:5].tolist()
    alone = [dreamrec.recommend(user=u, k=5) for u in users]
    together = dreamrec.recommend_queries([dreamrec.query(user=u) for u in users], [5] * 5)
    assert [r.items for r in together] == [r.items for r in alone]
    for batched, single in zip(together, alone, strict=True):
        np.testing.assert_allclose(batched.scores, single.scores, rtol=1e-5)
    reversed_batch = dreamrec.recommend_queries(
        [dreamrec.query(user=u) for u in users[::-1]], [5] * 5
    )
    assert [r.items for r in reversed_batch[::-1]] == [r.items for r in alone]

    from recdiff.serving.export import export_recommendations

    out = tmp_path / "recs.csv"
    export_recommendations(dreamrec, out, k=5, users=users, batch_size=3, progress=False)
    frame = pd.read_csv(out)
    for user, expected in zip(users, alone, strict=True):
        assert frame[frame["user"] == user]["item"].tolist() == expected.items


def _damaged_copy(run_dir, tmp_path, indptr=None, items=None):
    """A copy of the run whose saved sequences are replaced (each array kept unless given)."""
    import shutil

    run = shutil.copytree(run_dir, tmp_path / "damaged")
    path = run / "data/sequences.npz"
    with np.load(path) as saved:
        arrays = {"indptr": saved["indptr"], "items": saved["items"]}
    arrays.update({k: v for k, v in {"indptr": indptr, "items": items}.items() if v is not None})
    np.savez_compressed(path, **arrays)
    return run


def test_sequences_that_do_not_match_the_run_are_named_at_load(run_dir, predictor, tmp_path):
    damaged = "looks damaged: re-train the run or restore the folder from a backup"
    n_items = len(predictor.items)
    items = predictor.sequence_items.copy()
    items[-1] = n_items  # one index past the catalogue: a user's answer would fail
    run = _damaged_copy(run_dir, tmp_path, items=items)
    with pytest.raises(ValueError) as caught:
        Predictor.load(run)
    assert str(caught.value) == (
        f"{run / 'data/sequences.npz'}: its 'items' are not all item indices in "
        f"0..{n_items - 1} (data/items.json); the run folder {run} {damaged}"
    )


def test_sequences_of_another_user_count_are_named_at_load(run_dir, predictor, tmp_path):
    run = _damaged_copy(run_dir, tmp_path, indptr=predictor.indptr[:-1])
    with pytest.raises(ValueError, match=r"data/users\.json and .*data/sequences\.npz: holds"):
        Predictor.load(run)


def test_an_item_vocabulary_of_another_size_is_named_at_load(run_dir, tmp_path):
    import json
    import shutil

    run = shutil.copytree(run_dir, tmp_path / "damaged")
    vocabulary = json.loads((run / "data/items.json").read_text())
    (run / "data/items.json").write_text(json.dumps({**vocabulary, "ids": vocabulary["ids"][:9]}))
    with pytest.raises(ValueError, match=r"items.json: holds 9 item ids, but the model"):
        Predictor.load(run)


def test_sequences_without_an_array_are_named_at_load(run_dir, tmp_path):
    import shutil

    run = shutil.copytree(run_dir, tmp_path / "damaged")
    np.savez_compressed(run / "data/sequences.npz", items=np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"sequences\.npz: cannot be read .*indptr.*looks damaged"):
        Predictor.load(run)


@pytest.mark.parametrize("missing", [["data/sequences.npz"], ["data/users.json"]])
def test_a_run_without_its_users_files_is_named_damaged(run_dir, tmp_path, missing):
    # The run's config (data.format=demo) says it has users: without the file it used to load as a
    # run without users ("holds next-item examples without user ids"; export: "no users").
    import shutil

    run = shutil.copytree(run_dir, tmp_path / "damaged")
    for name in missing:
        (run / name).unlink()
    expected = (
        f"{run / missing[0]}: is missing, though the run's data (data.format=demo) holds users' "
        f"sequences; the run folder {run} {DAMAGED}"
    )
    with pytest.raises(ValueError) as caught:
        Predictor.load(run)
    assert str(caught.value) == expected
    for command in (["recommend", str(run), "--user", "5"], ["export", str(run), "--out", "x.csv"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2 and result.output.splitlines() == [f"error: {expected}"]


def _without_users(run_dir, tmp_path):
    """A copy of the run as a run of DreamRec's example files loads: no user ids."""
    import shutil

    import yaml

    run = shutil.copytree(run_dir, tmp_path / "examples-only")
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"].update(format="dreamrec", source=str(tmp_path / "dreamrec-folder"))
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "data/users.json").unlink()
    (run / "data/sequences.npz").unlink()
    return run


def test_export_of_a_run_without_user_ids_says_what_to_do_instead(run_dir, tmp_path):
    from recdiff.serving.export import export_recommendations

    run = _without_users(run_dir, tmp_path)
    predictor = Predictor.load(run)
    assert len(predictor.users) == 0 and predictor.recommend(history=[3], k=2).items
    out = tmp_path / "recs.csv"
    for users in (None, [1]):  # were "no users to export", "not among the 0 users"
        with pytest.raises(ValueError, match=r"no user ids .* trained on per-user data"):
            export_recommendations(predictor, out, k=3, users=users, progress=False)
    result = CliRunner().invoke(app, ["export", str(run), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "has no user ids" in result.output and "recommend from histories" in result.output
    for users in ("1", "u1"):  # parsed first: said "user ids of this run are integers" for u1
        result = CliRunner().invoke(app, ["export", str(run), "--out", str(out), "--users", users])
        assert result.exit_code == 2, result.output
        assert "without user ids; recommend from a history instead, or train on per-user data" in (
            result.output
        )
    assert not out.exists()


def test_a_known_user_with_an_empty_sequence_gets_the_empty_input_note(
    run_dir, predictor, tmp_path
):
    # The user of row 0 keeps their id but no item (a sequence-file line holding only the id).
    import json

    indptr = np.concatenate([[0], predictor.indptr[1:] - predictor.indptr[1]])
    run = _damaged_copy(run_dir, tmp_path, indptr, predictor.sequence_items[predictor.indptr[1] :])
    loaded = Predictor.load(run)
    user, other = (int(u) for u in loaded.users.ids[:2])
    recs = loaded.recommend(user=user, k=5)
    expected, _ = loaded.model.recommend([[]], k=5)
    assert recs.items == loaded.items.external(expected[0]).tolist()
    assert recs.note == EMPTY_SEQUENCE_NOTE and EMPTY_SEQUENCE_NOTE != EMPTY_INPUT_NOTE
    assert loaded.recommend(user=other, k=5).note is None
    together = loaded.recommend_queries([loaded.query(user=other), loaded.query(user=user)], [5, 5])
    assert [r.note for r in together] == [None, EMPTY_SEQUENCE_NOTE]
    result = CliRunner().invoke(app, ["recommend", str(run), "--user", str(user), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["note"] == EMPTY_SEQUENCE_NOTE


@pytest.mark.parametrize("which", ["sasrec", "dreamrec"])
def test_query_vectors_times_item_vectors_are_the_scores(predictor, dreamrec, which):
    model = (predictor if which == "sasrec" else dreamrec).model
    windows, _ = model.windows([[1, 2, 3], [], [7]])
    vectors, usable = model.item_vectors()
    assert usable is None
    scores = model.query_vectors(windows) @ vectors.T.float()
    torch.testing.assert_close(scores, model.score(windows), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("which", ["sasrec", "dreamrec"])
def test_an_exact_index_recommends_what_full_scoring_does(run_dir, dreamrec, which):
    plain = Predictor.load(run_dir if which == "sasrec" else dreamrec.directory)
    indexed = Predictor.load(run_dir if which == "sasrec" else dreamrec.directory)
    assert indexed.use_index("exact") == 1.0
    for user in plain.users.external(np.arange(8)).tolist():
        expected = plain.recommend(user=user, k=10)  # seen items excluded
        got = indexed.recommend(user=user, k=10)
        assert got.items == expected.items
        np.testing.assert_allclose(got.scores, expected.scores, rtol=1e-4)
    history = plain.items.external(np.arange(4)).tolist()
    assert (
        indexed.recommend(history=history, k=5).items == plain.recommend(history=history, k=5).items
    )


def test_a_faiss_index_reports_its_recall_and_serves_through_the_cli(run_dir):
    pytest.importorskip("faiss")
    indexed = Predictor.load(run_dir)
    recall = indexed.use_index("faiss")
    assert indexed.index_recall == recall and 0.9 <= recall <= 1.0  # 200 items: near exact
    user = str(indexed.users.external([0])[0])
    result = CliRunner().invoke(
        app, ["recommend", str(run_dir), "--user", user, "--index", "faiss"]
    )
    assert result.exit_code == 0, result.output
    assert "faiss index over 200 items; recall@20 against the exact top-20: " in result.output
    plain = Predictor.load(run_dir).recommend(user=indexed.parse_user(user), k=10).items
    listed = [line.split()[1] for line in result.output.splitlines() if line[:3].strip().isdigit()]
    assert len(listed) == 10 and len(set(listed) & {str(i) for i in plain}) >= 9


def test_an_index_is_refused_for_a_model_of_user_rows(tmp_path):
    run = run_training(load_config("demo-ease"), tmp_path, progress=False).directory
    with pytest.raises(ValueError, match="serves next-item runs"):
        Predictor.load(run).use_index("faiss")
    result = CliRunner().invoke(app, ["recommend", str(run), "--user", "3", "--index", "faiss"])
    assert result.exit_code != 0 and "serve it without one" in result.output


def test_the_service_says_which_index_ranks_and_answers_through_it(run_dir, serve_app):
    from recdiff.serving.service import create_app

    plain = Predictor.load(run_dir)
    indexed = Predictor.load(run_dir)
    indexed.use_index("exact", k=10)
    with serve_app(create_app(plain)) as http:
        assert http.get("/model").json()["index"] == {"kind": "exact", "recall@20": None}
        expected = http.post("/recommend", json={"user": 5, "k": 6}).json()
    with serve_app(create_app(indexed)) as http:
        assert http.get("/model").json()["index"] == {"kind": "exact", "recall@10": 1.0}
        assert (
            http.post("/recommend", json={"user": 5, "k": 6}).json()["items"] == expected["items"]
        )


def test_serve_passes_ef_search_to_the_faiss_index(run_dir):
    pytest.importorskip("faiss")
    from recdiff.cli.serve import IndexKind, load_with_index

    predictor = load_with_index(run_dir, IndexKind.faiss, ef_search=7)
    assert predictor.index.kind == "faiss"
    assert predictor.index.index.index.hnsw.efSearch == 7  # ItemIndex > FaissIndex > faiss
    assert load_with_index(run_dir, IndexKind.exact).index is None


def test_export_through_faiss_on_a_small_catalogue_writes_the_exact_lists(run_dir, tmp_path):
    plain, indexed = tmp_path / "plain.csv", tmp_path / "indexed.csv"
    for out, extra in [(plain, []), (indexed, ["--index", "faiss"])]:
        if extra:
            pytest.importorskip("faiss")
        args = ["export", str(run_dir), "--out", str(out), "--k", "5", "--quiet", *extra]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    assert "recall@20 against the exact top-20: 1.0000" in result.output  # 200 items: exact
    a, b = pd.read_csv(plain), pd.read_csv(indexed)
    assert list(b.columns) == ["user", "rank", "item", "score"] and len(b) == len(a)
    # faiss finds the exact top-20 here: the same items per user, in the same order.
    assert (a[["user", "rank", "item"]].to_numpy() == b[["user", "rank", "item"]].to_numpy()).all()
