"""The protection study: where does noise keep protecting, and at what cost?

A study is a list of experiments, each one noise generation (or clean data) and victims
trained on its protected data at several PGD-AT radii ρa. Experiments are grouped into
tables (a radius regime, a surrogate budget, an ablation). Every piece is an ordinary
resumable workdir, so re-running the command continues an interrupted study. Several
studies may share one workdir (run them one after another): a run is keyed by its name and
guarded by its own identity, so an experiment two studies share is computed once, and a name
reused for a different run is refused by that run.

    sem_jax_study.json             marks the workdir as a study workdir
    noise/{experiment}/            generate runs
    eval/{experiment}-ra{ρa}/      victims
    {study}_config.json            each study's config, as last run (a record)
    {study}.json, {study}.md, {study}-{group}.png

A TAP experiment attacks the ρa = 0 victim of its group's clean experiment. An experiment may
also train victims on noise made elsewhere (``noise_dir``: a finished generate or
``import-noise`` workdir). The efficacy benchmark is one such study
(``configs/study/efficacy_mnist5k.py``), and its older workdirs continue as study workdirs.
"""
from sem_jax.suites.study.lock import LOCK_FILE, MARK_FILE, claim_study_workdir, workdir_lock
from sem_jax.suites.study.runner import run_experiment, run_study, victim_dir
from sem_jax.suites.study.spec import Experiment, StudyConfig, clean_of, fixed_model, replicate
from sem_jax.suites.study.table import (markdown, plot, plot_path, radii, radius_key,
                                        total_compute_s, write_tables)

__all__ = ["LOCK_FILE", "MARK_FILE", "claim_study_workdir", "workdir_lock", "run_experiment",
           "run_study", "victim_dir", "Experiment", "StudyConfig", "clean_of", "fixed_model",
           "replicate", "markdown", "plot", "plot_path", "radii", "radius_key",
           "total_compute_s", "write_tables"]
