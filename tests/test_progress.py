"""Progress bars draw on a terminal only: logs, nohup and CI get no carriage returns."""

import io

from recdiff.config import load_config
from recdiff.progress import progress_bar
from recdiff.train.run import run_training


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_draws_on_a_terminal_only_and_only_when_asked():
    for file, show, drawn in [
        (Terminal(), True, True),
        (Terminal(), False, False),
        (io.StringIO(), True, False),
    ]:
        assert list(progress_bar(range(3), show=show, file=file, desc="work")) == [0, 1, 2]
        assert ("work" in file.getvalue()) == drawn, (type(file).__name__, show)


def test_training_with_bars_on_writes_none_into_a_log(tmp_path, capsys):
    settings = ["train.epochs=2", "train.eval_every=1", "model.hidden_dims=[16]"]
    run_training(load_config("demo-diffrec", settings), tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err and "epochs" not in err and "evaluating" not in err
