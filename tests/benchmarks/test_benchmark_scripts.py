"""The speed benchmarks run end to end at small sizes and write their results files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

_HAS_CUDA = torch.cuda.is_available()


def _run(script: str, *args: str, timeout: float = 240) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(BENCHMARKS / script), *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]


# a child process building 4,000-item models, ~13 s (the default run stays near 10 minutes)
@pytest.mark.slow
def test_large_catalog_at_a_small_size(tmp_path):
    _run(
        "large_catalog.py",
        *("--users", "1500", "--items", "4000", "--eval-users", "200", "--item-chunk", "1000"),
        *("--diffrec-steps", "2", "--threads", "1", "--results-dir", str(tmp_path)),
    )
    result = json.loads((tmp_path / "large_catalog.json").read_text())
    ldiffrec, diffrec = result["rows"]
    assert result["sizes"]["users"] == 1500 and result["sizes"]["items"] == 4000
    assert ldiffrec["autoencoder_epoch_seconds"] > 0 and ldiffrec["diffusion_epoch_seconds"] > 0
    assert ldiffrec["peak_rss_mib"] >= ldiffrec["rss_after_imports_mib"] > 0
    # DiffRec's [4000 + 10 -> 600 -> 200 -> 600 -> 4000] MLP, counted by hand.
    n = 4000
    assert diffrec["computed"]["parameters"] == (
        (n + 10) * 600 + 600 + 600 * 200 + 200 + 200 * 600 + 600 + 600 * n + n
    )
    assert "L-DiffRec" in (tmp_path / "large_catalog.md").read_text()


# six child processes, ~15 s, for steps of milliseconds each
@pytest.mark.slow
def test_scale_limits_at_a_small_size(tmp_path):
    _run(
        "scale_limits.py",
        *("--users", "600", "--items", "9000", "--rank-users", "100", "--candidates", "30"),
        *("--windows", "4", "--max-len", "5", "--results-dir", str(tmp_path)),
    )
    result = json.loads((tmp_path / "scale_limits.json").read_text())
    rows = result["rows"]
    # 9,000 items: two chunks of 8,192 and one; the lists are those of the block ranked whole
    assert rows["popularity_topk"]["lists_sha256"] == rows["popularity_whole"]["lists_sha256"]
    assert rows["popularity_topk"]["listed"] == 100 * 20
    assert rows["shortlist_columns"]["lists_sha256"] == rows["shortlist_rows"]["lists_sha256"]
    assert 0 < rows["shortlist_columns"]["listed"] <= 100 * 20
    assert rows["ease_refusal"]["refused"] is None  # 9,000 items fit in memory
    assert rows["sasrec_loss"]["logits"] == 4 * 5 * 9000 and rows["sasrec_loss"]["chunks"] == 1
    assert "ruled out as columns" in (tmp_path / "scale_limits.md").read_text()


# two trainings in a child process, ~6 s
@pytest.mark.slow
def test_checkpoint_cost_on_the_demo_data(tmp_path):
    _run(
        "checkpoint_cost.py",
        *("--preset", "demo-diffrec", "--epochs", "4", "--every", "2", "--threads", "1"),
        *("--set", "model.hidden_dims=[32]", "--results-dir", str(tmp_path)),
    )
    result = json.loads((tmp_path / "checkpoint_cost.json").read_text())
    without, every_2 = result["runs"]["None"], result["runs"]["2"]
    assert without["checkpoints"] == 0 and without["write_seconds_median"] is None
    # after epoch 2 (not after the last, 4: the stage's end is written instead), and at the end
    assert every_2["checkpoints"] == 2 and every_2["checkpoint_mib"] > 0
    # the same training either way: checkpoints draw no random numbers
    assert every_2["valid"] == without["valid"]
    assert "MiB a checkpoint" in (tmp_path / "checkpoint_cost.md").read_text()


@pytest.mark.slow
def test_run_all_on_the_demo_data(tmp_path):
    _run(
        "run_all.py",
        *("--models", "diffrec", "ldiffrec", "--epochs", "1", "--ddp-epochs", "2"),
        *("--threads", "1", "--peak-size", "256", "--results-dir", str(tmp_path)),
        *("--set", "data.format=demo", "--set", "data.source=null"),
        *("--set", "ldiffrec:model.latent.item_embeddings=null"),
    )
    result = json.loads((tmp_path / "run_all.json").read_text())
    diffrec, ldiffrec = result["rows"]
    assert set(ldiffrec["epoch_seconds"]) == {"autoencoder", "diffusion"}
    # Each row records the --set settings that reached its model, and only those.
    assert diffrec["overrides"] == ["data.format=demo", "data.source=null"]
    assert ldiffrec["overrides"][-1] == "model.latent.item_embeddings=null"
    assert diffrec["train_gflop_per_s"] > 0 and diffrec["eval_gflop_per_s"] > 0
    assert set(diffrec["ddp"]) == {"1", "2"} and diffrec["ddp"]["2"]["train"] > 0
    assert result["matmul_peak"]["fp32"] > 0 and result["matmul_peak"]["bf16"] > 0


def test_untrained_selection_simulation_on_a_hand_computed_case():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from untrained_selection import simulate
    finally:
        sys.path.remove(str(BENCHMARKS))
    # 21 untrained items: every 20-subset leaves out one item, uniformly at random.
    valid = np.linspace(0.001, 0.021, 21)  # item 0 is the rarest on validation
    test = np.full(21, 0.002)
    test[0], test[5] = 0.010, 0.0005  # ... but frequent on test; item 5 is the rarest on test
    result = simulate(valid, test, draws=20_000, evaluations=[1, 300], trials=2000, seed=0)
    assert result["subset_test_mean"] == pytest.approx(test.sum() * 20 / 21, rel=0.01)
    assert result["subset_test_max"] == pytest.approx(test.sum() - 0.0005)
    # Among 300 evaluations the best on validation almost surely drops item 0, the best on
    # test item 5.
    many = result["selected_by_valid"][300]
    assert many["test_mean"] == pytest.approx(test.sum() - 0.010, rel=1e-3)
    assert many["test_peak_mean"] == pytest.approx(test.sum() - 0.0005, rel=1e-3)
    one = result["selected_by_valid"][1]
    assert one["test_mean"] == pytest.approx(one["test_peak_mean"])


def test_history_conditioned_mix_on_a_hand_computed_case():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from untrained_selection import conditioned_mix
    finally:
        sys.path.remove(str(BENCHMARKS))
    # 40 untrained items (ids 0-39) and 30 trained ones (40-69), most popular first: 40, 41, ...
    untrained = np.arange(70) < 40
    rank = np.concatenate([np.arange(30, 70), np.arange(30)])
    split = {
        "targets": np.array([0, 45, 3, 60]),
        "untrained_history": np.array([True, True, False, False]),
    }
    grid = conditioned_mix(split, untrained, rank)
    # k1 = k2 = 0: the 20 most popular (ids 40-59) hit targets 45 only: 1 of 4.
    assert grid[0, 0] == pytest.approx(0.25)
    # k1 = 10: user 0 expects 10/40 on its untrained target, user 1 still has 45 in its top 10;
    # k2 = 20: user 2 expects 20/40, user 3's popular item 60 is out either way.
    assert grid[10, 20] == pytest.approx((10 / 40 + 1 + 20 / 40 + 0) / 4)
    # k1 = 16: user 1's list keeps only 4 popular items (40-43), so 45 drops out.
    assert grid[16, 0] == pytest.approx((16 / 40 + 0 + 0 + 0) / 4)


def test_released_style_encoder_ignores_padding_and_counts_positions_from_the_oldest():
    import torch

    sys.path.insert(0, str(BENCHMARKS))
    try:
        from dreamrec_released_encoder import ReleasedStyleEncoder
    finally:
        sys.path.remove(str(BENCHMARKS))
    torch.manual_seed(0)
    encoder = ReleasedStyleEncoder(n_items=20, dim=8, max_len=6, dropout=0.1).eval()
    pad = 20
    short = torch.tensor([[pad, pad, pad, 3, 7, 5]])
    longer = torch.tensor([[pad, 3, 7, 5, pad, pad]])[:, :4]  # the same items, one pad, L = 4
    torch.testing.assert_close(encoder(short), encoder(longer))
    # An extra, older item shifts every position and joins the attention: the state changes.
    assert not torch.allclose(encoder(short), encoder(torch.tensor([[pad, pad, 9, 3, 7, 5]])))
    assert torch.isfinite(encoder(torch.full((1, 6), pad))).all()  # an empty history


def test_eval_dropout_keeps_every_dropout_layer_active_through_eval():
    import torch

    sys.path.insert(0, str(BENCHMARKS))
    try:
        from test_peaks import keep_dropout_on
    finally:
        sys.path.remove(str(BENCHMARKS))
    net = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.Dropout(0.5))
    keep_dropout_on(net)
    net.eval()
    assert net.training and net[1].training
    x = torch.ones(1, 4)
    torch.manual_seed(0)
    first = net(x)
    assert (first == 0).any() and not torch.equal(first, net(x))  # masks drawn anew each call
    untouched = torch.nn.Sequential(torch.nn.Dropout(0.5)).eval()
    assert torch.equal(untouched(x), x)  # the patch is per network, not global


def _released_loop():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import dreamrec_released_loop
    finally:
        sys.path.remove(str(BENCHMARKS))
    return dreamrec_released_loop


def test_released_loop_process_matches_the_core_posterior():
    import torch

    from recdiff.diffusion import GaussianDiffusion, NoiseSchedule

    loop = _released_loop()
    process = loop.Process(50, 1e-4, 0.02)
    core = GaussianDiffusion(NoiseSchedule.linear(50, 1e-4, 0.02), prediction="x0")
    # Step 0 returns the x0 prediction itself, with no noise (beta~_0 = 0).
    assert process.coef_x0[0].item() == pytest.approx(1.0)
    assert process.coef_xt[0].item() == 0.0 and process.post_std[0].item() == 0.0
    x0, x_t = torch.randn(3, 4), torch.randn(3, 4)
    for n in (1, 17, 49):
        t = torch.full((3,), n)
        posterior = core.q_posterior(x0, x_t, t)
        mean = process.coef_x0[n] * x0 + process.coef_xt[n] * x_t
        torch.testing.assert_close(mean, posterior.mean)
        torch.testing.assert_close(process.post_std[n] ** 2, posterior.variance[0, 0])
    t = torch.tensor([0, 17, 49])
    torch.manual_seed(3)
    noised = process.q_sample(x0, t)
    torch.manual_seed(3)
    torch.testing.assert_close(noised, core.q_sample(x0, t, torch.randn_like(x0)))


def test_released_loop_sampling_uses_the_guided_prediction():
    import torch

    loop = _released_loop()

    class ReturnsItsCondition:
        null = torch.tensor([1.0, -1.0])

        def __call__(self, x, c, t):
            return c

    # One step: DDPM returns the guided x0 prediction itself, (1 + w) f(x, c) - w f(x, null),
    # here (1 + w) c - w null.
    c = torch.tensor([[2.0, 0.5], [0.0, 3.0]])
    out = loop.Process(1, 1e-4, 0.02).sample(ReturnsItsCondition(), c, w=2.0)
    torch.testing.assert_close(out, 3 * c - 2 * ReturnsItsCondition.null)


def test_released_loop_reads_the_state_at_the_last_real_item_of_right_padded_histories():
    import torch

    loop = _released_loop()
    torch.manual_seed(0)
    model = loop.ReleasedDreamRec(n_items=20, dim=8, length=6, dropout=0.1, denoiser="mlp1").eval()
    pad = 20
    seq = torch.tensor([[3, 7, 5, pad, pad, pad], [3, 7, 5, 9, pad, pad]])
    state = model.guidance(seq, torch.tensor([3, 3]))
    # Causal attention: the state at the third item ignores what follows it.
    torch.testing.assert_close(state[0], state[1])
    assert not torch.allclose(state[1], model.guidance(seq[1:], torch.tensor([4]))[0])
    # An empty history (seq_len 1, all padding) still gives a finite guidance vector.
    assert torch.isfinite(model.guidance(torch.full((1, 6), pad), torch.tensor([1]))).all()


def test_released_loop_metrics_on_a_hand_computed_case():
    from types import SimpleNamespace

    import torch

    loop = _released_loop()
    # Items 0-4 plus the padding row 5; the oracle e_0 + 2 e_1 ranks the padding row (6), then
    # items 1 (2), 0 (1), 4, 3, 2.
    table = torch.nn.Embedding(6, 3)
    with torch.no_grad():
        table.weight.copy_(
            torch.tensor(
                [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.1, 0, 0], [0.2, 0, 0], [0, 3.0, 0]]
            )
        )
    oracle = torch.tensor([[1.0, 2.0, 0.0]]).repeat(3, 1)
    model = SimpleNamespace(items=table, guidance=lambda seq, seq_len: torch.zeros(len(seq), 3))
    process = SimpleNamespace(sample=lambda model, c, w: oracle[: len(c)])
    trained = torch.tensor([True, False, True, True, True])  # item 1 never trained
    split = (
        torch.zeros(3, 2, dtype=torch.long),
        torch.ones(3, dtype=torch.long),
        torch.tensor([1, 0, 2]),
    )
    # Batches of 2: the third example is dropped, as the released evaluation drops it.
    got = loop.evaluate(model, process, split, trained, w=4.0, batch=2, k=3)
    # Top-3 is the padding row, 1, 0: item 1's example hits at rank 2, item 0's at rank 3.
    assert got["hr@3"] == pytest.approx(1.0)
    assert got["ndcg@3"] == pytest.approx((1 / np.log2(3) + 1 / np.log2(4)) / 2)
    # Without the untrained item 1 and the padding row, the top-3 is 0, 4, 3.
    assert got["hr@3_untrained_excluded"] == pytest.approx(0.5)
    assert got["untrained_slots"] == pytest.approx(2 / 3)


def test_released_loop_refuses_fewer_epochs_than_one_evaluation_needs():
    command = [sys.executable, str(BENCHMARKS / "dreamrec_released_loop.py"), "--epochs", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2  # before the fix: a ValueError traceback after training
    assert "--eval-every 10 must lie in 1..--epochs (2)" in done.stderr


def _benchmark_module(name: str):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


def _usage_error(script: str, *args: str) -> str:
    """Run ``script`` expecting a usage error (exit 2, no traceback); its stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(BENCHMARKS / script), *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done.stderr


def test_results_files_are_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    common = _benchmark_module("_common")
    common.write_results("r", {"a": 1}, ["| old |"], tmp_path)
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}
    real_write = Path.write_text

    def half_then_fail(self, text, *args, **kwargs):  # a full disk, a kill mid-write
        real_write(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        common.write_results("r", {"a": 2, "b": "x" * 200}, ["| new |"], tmp_path)
    monkeypatch.undo()
    # Before the fix: r.json held half of the new JSON. Now the old files, and no temporary ones.
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before


def test_figures_are_saved_as_png_through_a_temporary_file(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    common = _benchmark_module("_common")
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    common.save_figure(fig, tmp_path / "curve.png")
    plt.close(fig)
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_median_after_warmup_refuses_a_lone_warmup_timing():
    common = _benchmark_module("_common")
    assert common.median_after_warmup([9.0, 1.0, 3.0, 2.0]) == 2.0
    with pytest.raises(ValueError, match="warm-up"):
        common.median_after_warmup([9.0])  # before: 9.0, the warm-up reported as the epoch


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("eval_speed.py", ["--repeats", "0"], "--repeats: must be >= 1, got 0"),
        ("eval_speed.py", ["--threads", "0"], "--threads: must be >= 1, got 0"),
        ("eval_speed.py", ["--batch-size", "0"], "--batch-size: must be >= 1, got 0"),
        ("large_catalog.py", ["--users", "0"], "--users: must be >= 1, got 0"),
        ("large_catalog.py", ["--item-chunk", "0"], "--item-chunk: must be >= 1, got 0"),
        ("serve_load.py", ["--concurrency", "0"], "--concurrency: must be >= 1, got 0"),
        ("serve_load.py", ["--requests", "0"], "--requests: must be >= 1, got 0"),
        ("dreamrec_sampling.py", ["RUN", "--fast", "bogus"], "ddim:N or ddpm:N"),
        ("untrained_selection.py", ["--draws", "0"], "--draws: must be >= 1, got 0"),
        ("sampling_draws.py", ["RUN", "--seeds", "1"], "--seeds: must be >= 2, got 1"),
        ("batch_consistency.py", ["RUN", "--users", "0"], "--users: must be >= 1, got 0"),
        ("run_all.py", ["--ddp-epochs", "1"], "--ddp-epochs: must be >= 2, got 1"),
        ("run_all.py", ["--epochs", "0"], "--epochs: must be >= 1, got 0"),
        ("run_all.py", ["--set", "typo:train.lr=1"], "unknown model 'typo'"),
        ("run_all.py", ["--models", "diffrec", "--set", "train.nope=1"], "train.nope"),
        ("cuda_check.py", ["--out", "OUT", "--device", "foo"], "cuda[:N] or cpu, got foo"),
        ("diffrec_speed.py", ["--device", "foo"], "cuda[:N] or cpu, got foo"),
        ("diffrec_speed.py", ["--device", "meta"], "cuda[:N] or cpu, got meta"),
        pytest.param(
            "diffrec_speed.py",
            ["--device", "cuda"],
            "sees no CUDA device here",
            marks=pytest.mark.skipif(_HAS_CUDA, reason="this machine has a CUDA device"),
        ),
    ],
)
def test_bad_arguments_end_in_a_usage_message(tmp_path, script, args, message):
    args = [str(tmp_path / "x") if a in ("RUN", "OUT") else a for a in args]
    if script == "run_all.py":  # refused in the parent, before the matmul peak is timed
        args += ["--results-dir", str(tmp_path)]
    assert message in _usage_error(script, *args)
    assert not list(tmp_path.glob("*.json"))


def _fake_run(folder: Path, preset: str) -> Path:
    """A run directory as far as the kind check reads one: the preset as its config.yaml."""
    from importlib import resources

    folder.mkdir()
    text = (resources.files("recdiff.config") / "presets" / f"{preset}.yaml").read_text()
    (folder / "config.yaml").write_text(text)
    return folder


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("untrained_items.py", ["DIFFREC_RUN"], "needs a next-item run"),
        ("batch_consistency.py", ["ZHIHU_RUN"], "needs a run with user ids"),
        ("sampling_draws.py", ["DIFFREC_RUN"], "needs a DreamRec run"),
        ("dreamrec_sampling.py", ["DIFFREC_RUN"], "needs a DreamRec run"),
        ("dreamrec_sampling.py", ["SASREC_RUN"], "needs a DreamRec run"),
        ("test_peaks.py", ["demo-diffrec"], "needs a next-item preset"),
        ("untrained_selection.py", ["--preset", "demo-diffrec"], "needs a next-item preset"),
        ("dreamrec_released_encoder.py", ["--preset", "demo-sasrec"], "needs a DreamRec preset"),
    ],
)
def test_the_wrong_kind_of_run_or_preset_is_refused_up_front(tmp_path, script, args, message):
    runs = {
        "DIFFREC_RUN": _fake_run(tmp_path / "diffrec", "demo-diffrec"),
        "SASREC_RUN": _fake_run(tmp_path / "sasrec", "demo-sasrec"),
        "ZHIHU_RUN": _fake_run(tmp_path / "zhihu", "dreamrec-zhihu"),  # examples, no users
    }
    args = [str(runs.get(a, a)) for a in args]
    stderr = _usage_error(script, *args, "--results-dir", str(tmp_path))
    assert message in stderr and "got " in stderr
    assert not list(tmp_path.glob("*.json"))  # before: untrained_selection wrote a zero table


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("large_catalog.py", "beside DiffRec's dense MLP on the same catalogue."),
        ("dreamrec_sampling.py", "ddim:N or ddpm:N"),
        ("serve_load.py", "--max-wait-ms: how long"),
        ("dreamrec_released_loop.py", "diffusion steps T"),
        ("baselines_ml1m.py", "EASE L2 penalties"),
    ],
)
def test_help_explains_the_options(script, expected):
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},  # one line per option: the phrases stay whole
    )
    assert done.returncode == 0 and expected in done.stdout


@pytest.fixture(scope="module")
def dreamrec_run(tmp_path_factory) -> Path:
    """A demo-dreamrec run of a few epochs, trained as `recdiff train` trains it."""
    runs = tmp_path_factory.mktemp("runs")
    command = [sys.executable, "-m", "recdiff", "train", "demo-dreamrec", "--quiet"]
    command += ["--runs-dir", str(runs), "--set", "train.epochs=3", "--set", "train.eval_every=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = runs.iterdir()
    return run


def test_dreamrec_scoring_reproduces_the_runs_own_metrics(dreamrec_run, tmp_path):
    metrics = json.loads((dreamrec_run / "metrics.json").read_text())
    _run("untrained_items.py", str(dreamrec_run), "--threads", "1", "--results-dir", str(tmp_path))
    (row,) = json.loads((tmp_path / "untrained_items.json").read_text())["rows"]
    _run(
        "dreamrec_sampling.py",
        *(str(dreamrec_run), "--fast", "--weights", "2", "--threads", "1"),
        *("--results-dir", str(tmp_path)),
    )
    sampling = json.loads((tmp_path / "dreamrec_sampling.json").read_text())
    assert sampling["configured"] == {
        "sampler": "ddpm",
        "sampling_steps": 100,
        "guidance_weight": 2,
    }
    for split in ("valid", "test"):
        # Before the fix: one generator per split, so other noise and other numbers.
        assert row[split]["hr"] == pytest.approx(metrics[split]["hit_rate@20"], abs=1e-12)
        assert row[split]["ndcg"] == pytest.approx(metrics[split]["ndcg@20"], abs=1e-12)
        (ddpm,) = [r for r in sampling["samplers"] if r["split"] == split]
        assert ddpm["hit_rate@20"] == pytest.approx(metrics[split]["hit_rate@20"], abs=1e-12)
        assert ddpm["ndcg@20"] == pytest.approx(metrics[split]["ndcg@20"], abs=1e-12)
        (swept,) = sampling["guidance"]
        assert swept[split]["ndcg@20"] == pytest.approx(metrics[split]["ndcg@20"], abs=1e-12)
    assert (tmp_path / "dreamrec_guidance.png").is_file()


# a DreamRec training in a child process, ~7 s
@pytest.mark.slow
def test_test_peaks_names_a_yaml_file_by_its_stem_and_the_configs_seed(dreamrec_run, tmp_path):
    # The same settings as the run (train.seed left at its default, 1), from a YAML file.
    config = tmp_path / "my-dreamrec.yaml"
    config.write_text((dreamrec_run / "config.yaml").read_text())
    _run("test_peaks.py", str(config), "--results-dir", str(tmp_path / "out"))
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    # Before: a crash on the path's slashes, and "seed0" though train.seed is 1.
    assert names == [f"test_peaks_my-dreamrec_seed1.{ext}" for ext in ("json", "md", "png")]
    result = json.loads((tmp_path / "out" / names[0]).read_text())
    metrics = json.loads((dreamrec_run / "metrics.json").read_text())
    # Ranked as the run's evaluation ranks: the best-valid evaluation is the run's own result.
    assert result["best_valid"]["epoch"] == metrics["best_epoch"]
    for split in ("valid", "test"):
        got = result["best_valid"][split]["all"]
        assert got["ndcg@20"] == pytest.approx(metrics[split]["ndcg@20"], abs=1e-12)
    # The table's columns are HR@20; its selected row names the metric it was selected on.
    from recdiff.config import load_config

    metric = load_config(str(config)).train.metric
    assert result["selected_on"] == f"valid {metric}"
    table = (tmp_path / "out" / names[1]).read_text()
    assert f"| best valid {metric} (selected) |" in table


def test_untrained_selection_takes_a_name_and_a_results_dir(tmp_path):
    _run(
        "untrained_selection.py",
        *("--preset", "demo-dreamrec", "--draws", "200", "--trials", "20"),
        *("--evaluations", "1", "5", "--name", "picked", "--results-dir", str(tmp_path)),
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["picked.json", "picked.md"]


@pytest.mark.slow  # ~10 s: two trainings and the script in a child process
def test_batch_consistency_finds_no_difference_where_a_row_is_scored_alone(tmp_path):
    from recdiff.config import load_config
    from recdiff.train.run import run_training

    runs = tmp_path / "runs"
    ease = run_training(load_config("demo-ease"), runs, progress=False).directory
    settings = ["train.epochs=2", "train.eval_every=1", "model.hidden_dims=[16]"]
    diffrec = run_training(load_config("demo-diffrec", settings), runs, progress=False).directory
    _run(
        "batch_consistency.py",
        *(str(ease), str(diffrec), "--users", "40", "--batch-size", "16", "--threads", "1"),
        *("--results-dir", str(tmp_path)),
    )
    rows = json.loads((tmp_path / "batch_consistency.json").read_text())["rows"]
    for row in rows:
        assert row["users"] == 40 and row["k"] == 20 and row["batch_size"] == 16
        assert row["lists_differ"] == row["order_only"] + row["other_items"]
        assert row["lists_differ"] == sum(row["first_difference"].values()) <= 40
        # the k-th score moves no more than any score does
        assert row["max_abs_listed_score_diff"] <= row["max_abs_score_diff"]
        assert row["seconds"]["batched"] > 0 and row["seconds"]["alone"] > 0
    ease_row, diffrec_row = rows
    assert (ease_row["model"], diffrec_row["model"]) == ("ease", "diffrec")
    # EASE scores a row as a sparse row times its matrix: the same sums in any batch
    assert ease_row["lists_differ"] == 0 and ease_row["examples"] == []
    assert ease_row["max_abs_score_diff"] == 0 and ease_row["identical_score_rows"] == 40
    # DiffRec with T' = 0 draws nothing: batched matmuls only round differently (a few float32
    # ulps, 1.2e-7 each, over its 10 steps)
    assert diffrec_row["max_rel_score_diff"] < 1e-5
    table = (tmp_path / "batch_consistency.md").read_text()
    assert "| top-20 lists differ |" in table and "| ease | 40 | 0 | 0 | 0 | - |" in table
