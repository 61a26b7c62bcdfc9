"""Experiments on top of training runs: hyper-parameter search and multi-seed comparisons.

``space``        search spaces (YAML, dotted setting paths -> distributions), shipped ones by name
``parameters``   the kinds of space entry (float, int, categorical) and their checks
``tune``         Optuna search selected on a validation metric, resumable, writes best.yaml
``trials``       a trial's config: the sampled settings applied to the base config, validated
``tune_outputs`` what a search writes and returns: trials.csv, best.yaml, one line per trial
``storage``      the search's Optuna study on disk: opened (or refused), killed trials failed
``experiment``   configs x seeds -> results.csv and results.md (mean ± std, paired tests)
``records``      each finished (config, seed)'s record, read back so a re-run skips it
``reuse``        one run for all seeds of a deterministic config (popularity, EASE)
``workers``      the processes of ``experiment --jobs N``, which stop when the command stops
``per_user``     per-user test metrics of a fitted model or a run directory
``comparable``   whether two runs have the same test targets, ranked the same way (paired tests,
                 run reports)
``stats``        paired significance tests and mean ± std formatting
"""
