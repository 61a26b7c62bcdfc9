"""The caller's own rules on a list: ``exclude_items`` (never these, e.g. out of stock) and
``candidates`` (rank only these, a shortlist), from Python, the CLI and HTTP, for a DiffRec run
and a next-item run. Known answer: the filtered list is the unfiltered full ranking with the
ruled-out items taken out, in the same order."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from recdiff.cli.main import app as cli
from recdiff.config import load_config
from recdiff.serving.predictor import Predictor
from recdiff.train.run import run_training

runner = CliRunner()


@pytest.fixture(scope="module")
def predictor(run_dir):
    return Predictor.load(run_dir)


@pytest.fixture(scope="module")
def sasrec(tmp_path_factory):
    config = load_config("demo-sasrec", ["train.epochs=1", "train.eval_every=1", "model.dim=8"])
    runs = tmp_path_factory.mktemp("rules-runs")
    return Predictor.load(run_training(config, runs, progress=False).directory)


def _everything(predictor, **query):
    """The full ranking of the unfiltered request: every item it can return, best first."""
    return predictor.recommend(**query, k=len(predictor.items)).items


@pytest.mark.parametrize("which", ["diffrec", "sasrec"])
@pytest.mark.parametrize("query", [{"user": 3}, {"history": [1, 2, 3]}])
def test_the_rules_take_items_out_of_the_full_ranking_in_order(which, query, request):
    predictor = request.getfixturevalue("predictor" if which == "diffrec" else which)
    ranking = _everything(predictor, **query)
    gone = [ranking[0], ranking[2], ranking[5]]
    excluded = predictor.recommend(**query, k=10, exclude_items=gone)
    assert excluded.items == [i for i in ranking if i not in gone][:10]
    assert excluded.note is None

    shortlist = [ranking[40], ranking[7], ranking[-1], ranking[3]]  # in no particular order
    ranked = predictor.recommend(**query, k=3, candidates=shortlist)
    assert ranked.items == [ranking[3], ranking[7], ranking[40]]
    both = predictor.recommend(**query, k=4, candidates=shortlist, exclude_items=[ranking[7]])
    assert both.items == [ranking[3], ranking[40], ranking[-1]]
    assert both.note.startswith("only 3 catalogue items are left to recommend")
    # the scores are the unfiltered request's
    full = predictor.recommend(**query, k=len(ranking))
    assert both.scores == [full.scores[3], full.scores[40], full.scores[-1]]


def test_seen_items_stay_out_of_candidates_unless_asked(predictor):
    seen = predictor.recommend(history=[1, 2, 3], k=3, candidates=[1, 2, 3])
    assert seen.items == [] and "left to recommend" in seen.note
    kept = predictor.recommend(history=[1, 2, 3], k=3, candidates=[1, 2, 3], exclude_seen=False)
    assert sorted(kept.items) == [1, 2, 3]


def test_ids_the_catalogue_lacks_are_skipped_but_not_a_shortlist_of_none(predictor):
    ranking = _everything(predictor, user=3)
    recs = predictor.recommend(user=3, k=2, exclude_items=[ranking[0], "nope", 10**30, 999_999])
    assert recs.items == ranking[1:3]
    assert predictor.recommend(user=3, k=1, candidates=[ranking[9], "nope"]).items == [ranking[9]]
    with pytest.raises(ValueError, match="none of the 2 candidates is in the catalogue"):
        predictor.recommend(user=3, candidates=["nope", 999_999])
    with pytest.raises(ValueError, match="candidates is empty"):
        predictor.recommend(user=3, candidates=[])
    with pytest.raises(TypeError, match="exclude_items must be a list of item ids"):
        predictor.recommend(user=3, exclude_items="12")


def test_the_cli_takes_both_rules(run_dir, predictor):
    ranking = _everything(predictor, user=3)
    args = ["recommend", str(run_dir), "--user", "3", "-k", "2", "--json"]
    result = runner.invoke(cli, [*args, "--exclude-items", f"{ranking[0]},{ranking[1]}"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["items"] == ranking[2:4]
    result = runner.invoke(cli, [*args, "--candidates", f"{ranking[8]}, {ranking[6]}"])
    assert json.loads(result.stdout)["items"] == [ranking[6], ranking[8]]
    result = runner.invoke(cli, [*args, "--candidates", "x,y"])
    assert result.exit_code == 2
    assert "error: none of the 2 candidates is in the catalogue" in result.output


def test_http_takes_both_rules(run_dir, predictor, serve_app):
    pytest.importorskip("fastapi")
    from recdiff.serving.service import create_app

    ranking = _everything(predictor, history=[1, 2, 3])
    with serve_app(create_app(run_dir)) as http:
        body = {"history": [1, 2, 3], "k": 2, "exclude_items": [ranking[0]]}
        assert http.post("/recommend", json=body).json()["items"] == ranking[1:3]
        body = {"history": [1, 2, 3], "k": 5, "candidates": [ranking[4], ranking[2]]}
        answer = http.post("/recommend", json=body).json()
        assert answer["items"] == [ranking[2], ranking[4]]
        assert answer["note"].startswith("only 2 catalogue items are left to recommend")
        refused = http.post("/recommend", json={"user": 3, "candidates": ["x"]})
        assert refused.status_code == 422
        assert "none of the 1 candidates" in refused.json()["detail"]
        refused = http.post("/recommend", json={"user": 3, "candidates": [True]})
        assert refused.status_code == 422


def test_export_applies_both_rules_to_every_user(run_dir, predictor, tmp_path):
    import pandas as pd

    out = tmp_path / "recs.csv"
    args = ["export", str(run_dir), "--out", str(out), "--users", "3,4", "-k", "3", "--quiet"]
    mine = [_everything(predictor, user=u) for u in (3, 4)]
    shortlist = sorted({*mine[0][5:9], *mine[1][5:9]})
    gone = [mine[0][5], mine[1][6]]
    rules = ["--candidates", ",".join(map(str, shortlist))]
    rules += ["--exclude-items", ",".join(map(str, gone))]
    result = runner.invoke(cli, [*args, *rules])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    for user, ranking in zip((3, 4), mine, strict=True):
        expected = [i for i in ranking if i in shortlist and i not in gone][:3]
        assert table[table.user == user].sort_values("rank").item.tolist() == expected
    refused = runner.invoke(cli, [*args, "--candidates", "x"])
    assert refused.exit_code == 2 and "none of the 1 candidates" in refused.output


def test_http_refuses_query_parameters_it_would_ignore(run_dir, serve_app):
    """``/recommend?k=5`` with a body used to answer with k = 10, the ``?k=5`` dropped without
    a word; without a body the 422 said only that no body was sent."""
    pytest.importorskip("fastapi")
    from recdiff.serving.service import create_app

    with serve_app(create_app(run_dir)) as http:
        refused = http.post("/recommend?k=5&exclude_seen=false", json={"user": 3})
        assert refused.status_code == 422
        detail = refused.json()["detail"]
        assert "not query parameters (exclude_seen, k)" in detail and '"user": 3' in detail
        bodiless = http.post("/recommend?user=3")
        assert bodiless.status_code == 422
        assert "no JSON body was sent" in bodiless.json()["detail"]
        assert "not query parameters (user)" in bodiless.json()["detail"]
        assert http.post("/recommend", json={"user": 3, "k": 5}).status_code == 200


def test_a_shortlist_under_a_faiss_index_is_ranked_exactly(sasrec, monkeypatch):
    """A candidates list rules out most of the catalogue: through the index that was a search
    of nearly all of it with a row of exclusions per user; it is ranked exactly instead."""
    pytest.importorskip("faiss")
    indexed = Predictor.load(sasrec.directory)
    indexed.use_index("faiss")
    ranking = _everything(sasrec, user=3)
    shortlist = [ranking[30], ranking[2], ranking[11]]
    expected = sasrec.recommend(user=3, k=2, candidates=shortlist)

    def no_search(*args, **kwargs):
        raise AssertionError("the index was searched for a shortlist")

    monkeypatch.setattr(indexed.index, "top_k", no_search)
    got = indexed.recommend(user=3, k=2, candidates=shortlist)
    assert got.items == expected.items == [ranking[2], ranking[11]]
    with pytest.raises(AssertionError, match="the index was searched"):
        indexed.recommend(user=3, k=2, exclude_items=[ranking[0]])  # a few: through the index
