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
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import time
from typing import Callable

from sem_jax.commands.evaluate import evaluate_noise
from sem_jax.commands.generate import generate_noise
from sem_jax.core.crafting.methods import METHODS
from sem_jax.errors import SemJaxError
from sem_jax.files import atomic
from sem_jax.run import legacy, loop
from sem_jax.run.artifacts import Manifest, read_manifest
from sem_jax.run.config import EvalConfig, GenerateConfig, from_dict
from sem_jax.run.configfile import apply_overrides
from sem_jax.run.plots import bar_plot, line_plot
from sem_jax.suites import leaderboard

MARK_FILE = "sem_jax_study.json"
LOCK_FILE = ".sem_jax_study.lock"   # held (flock) by the study command using the workdir


@dataclasses.dataclass(frozen=True)
class Experiment:
  """One row of a study table: noise (None = clean data) and its victims at ``adv_radii``."""
  name: str                               # names the workdirs (shared only by equal runs)
  group: str                              # the table it is a row of
  evaluation: EvalConfig                  # the victim (adv_radius set per column)
  adv_radii: tuple = (0.0,)               # victim ρa, pixel levels
  generate: GenerateConfig | None = None  # None: the clean reference
  label: str = ""                         # row label (default: the name)
  noise: str = ""                         # noise workdir name (default: the name); equal
                                          # generate configs may share one, e.g. two victims
  noise_dir: str = ""                     # instead of generate: a finished noise workdir made
                                          # elsewhere (a generate or import-noise workdir)

  @property
  def noise_name(self) -> str:
    return self.noise or self.name

  @classmethod
  def from_dict(cls, d: dict) -> "Experiment":
    """The experiment [`to_dict`][to_dict] described."""
    gen = d.get("generate")
    return cls(name=d["name"], group=d["group"], label=d.get("label", ""),
               evaluation=from_dict(d["evaluation"], EvalConfig),
               adv_radii=tuple(float(r) for r in d["adv_radii"]),
               generate=None if gen is None else from_dict(gen, GenerateConfig),
               noise="" if d.get("noise", d["name"]) == d["name"] else d["noise"],
               noise_dir=d.get("noise_dir", ""))

  def to_dict(self) -> dict:
    return {"name": self.name, "group": self.group, "label": self.label or self.name,
            "evaluation": self.evaluation.to_dict(), "adv_radii": list(self.adv_radii),
            "generate": self.generate.to_dict() if self.generate else None,
            "noise": self.noise_name, **({"noise_dir": self.noise_dir} if self.noise_dir else {})}


@dataclasses.dataclass(frozen=True)
class StudyConfig:
  """A titled list of experiments (see [`Experiment`][Experiment]); ``name`` stems its files."""
  experiments: tuple = ()
  title: str = "protection study"
  name: str = "study"
  leaderboard: bool = False    # groups are attacks, labels defenses: also leaderboard.*

  def replace(self, **kw) -> "StudyConfig":
    return dataclasses.replace(self, **kw)

  def nested_override(self, name: str, value: str) -> "StudyConfig":
    """``--config.evaluation.FIELD=V`` sets a field of every experiment's victim,
    ``--config.generate.FIELD=V`` of every experiment's generation."""
    part, _, field = name.partition(".")
    if part not in ("evaluation", "generate") or not field:
      raise SemJaxError(f"--config.{name}: a study takes evaluation.FIELD and generate.FIELD")
    change = lambda c: apply_overrides(c, [f"{field}={value}"])
    return self.replace(experiments=tuple(
        dataclasses.replace(e, **({"evaluation": change(e.evaluation)} if part == "evaluation"
                                  else {"generate": change(e.generate)} if e.generate else {}))
        for e in self.experiments))

  def to_dict(self) -> dict:
    return {"name": self.name, "title": self.title,
            "experiments": [e.to_dict() for e in self.experiments]}

  def validate(self) -> "StudyConfig":
    if not self.experiments:
      raise SemJaxError("the study has no experiments")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", self.name):
      raise SemJaxError(f"study name {self.name!r}: use letters, digits, '_' and '-' only")
    seen: dict[str, Experiment] = {}
    noises: dict[str, Experiment] = {}
    for e in self.experiments:   # a name may recur (in other groups) only for the same runs
      first = seen.setdefault(e.name, e)
      if (first.evaluation, first.generate, first.noise_name) != (e.evaluation, e.generate,
                                                                  e.noise_name):
        raise SemJaxError(f"experiment name {e.name!r} is used for two different experiments")
      if e.generate is not None and noises.setdefault(e.noise_name, e).generate != e.generate:
        raise SemJaxError(f"noise name {e.noise_name!r} is used for two different generations")
    for e in self.experiments:
      if not e.name or "/" in e.name:
        raise SemJaxError(f"bad experiment name {e.name!r}")
      e.evaluation.validate()
      if e.generate is not None and not fixed_model(e.generate):
        e.generate.validate()
      if e.generate is not None and e.noise_dir:
        raise SemJaxError(f"experiment {e.name!r}: give generate or noise_dir, not both")
      if fixed_model(e.generate) and clean_of(self, e) is None:
        raise SemJaxError(f"{e.generate.method} experiment {e.name!r} needs a clean experiment in group "
                          f"{e.group!r} (its ρa = 0 victim is the fixed model)")
      if not e.adv_radii or any(r < 0 for r in e.adv_radii):
        raise SemJaxError(f"experiment {e.name!r}: adv_radii must be levels >= 0")
    return self


def replicate(cfg: StudyConfig, seed: int) -> StudyConfig:
  """The study again at another seed (``study --seed``): every experiment's generation and
  victims seeded ``seed``, its name and shared-noise name suffixed ``-seed{seed}``, its label
  ``(seed {seed})``; the study's files are stemmed ``{name}-seed{seed}``, so they sit beside
  the original's in a shared workdir. Experiments the config seeds itself (hand-made
  replicates of its other rows) are left out: their base row, reseeded, is the replicate.
  Groups keep their names, so a TAP experiment attacks its group's seeded clean victim.
  ``seed`` 0 returns the study unchanged."""
  if seed < 0:
    raise SemJaxError(f"--seed {seed}: a seed is an integer >= 0")
  if seed == 0:
    return cfg
  sfx, out = f"-seed{seed}", []
  for e in cfg.experiments:
    if e.evaluation.seed or (e.generate is not None and e.generate.seed):
      continue
    out.append(dataclasses.replace(
        e, name=e.name + sfx, label=f"{e.label or e.name} (seed {seed})",
        evaluation=e.evaluation.replace(seed=seed),
        generate=None if e.generate is None else e.generate.replace(seed=seed),
        noise=e.noise + sfx if e.noise else ""))
  return cfg.replace(experiments=tuple(out), name=cfg.name + sfx,
                     title=f"{cfg.title} (seed {seed})")


def fixed_model(g) -> bool:
  """Whether generation config ``g`` (or None) attacks a fixed model: its group's clean
  ρa = 0 victim (tap, hypo)."""
  return g is not None and METHODS[g.method].fixed_model


def clean_of(cfg: StudyConfig, e: Experiment) -> Experiment | None:
  return next((c for c in cfg.experiments if c.group == e.group and c.generate is None
               and 0.0 in c.adv_radii), None)


def _tag(r: float) -> str:
  return f"{r:g}".replace(".", "p")


def run_study(cfg: StudyConfig, workdir: str, log: Callable[[str], None] = print,
              devices=None) -> dict | None:
  """Run (or continue) the study; return its result dict, or None if a piece was stopped
  (SIGTERM: the running piece checkpoints, no new piece starts)."""
  cfg = cfg.validate()   # a bad config stops before the workdir is made
  with loop.StopSignal() as stop, workdir_lock(workdir):
    return _run_study(cfg, workdir, log, devices, stop)


def _run_study(cfg: StudyConfig, workdir: str, log, devices, stop) -> dict | None:
  atomic.write_json(os.path.join(workdir, f"{cfg.name}_config.json"), cfg.to_dict())
  t0 = time.time()
  rows = []
  for e in cfg.experiments:   # in the listed order: put what matters most first
    if stop.stopped(log, f"experiment {e.name}"):
      return None
    if fixed_model(e.generate):
      if run_experiment(cfg, clean_of(cfg, e), workdir, log, devices) is None:
        return None
    row = run_experiment(cfg, e, workdir, log, devices)
    if row is None:
      return None
    rows.append({**row, "group": e.group, "label": e.label or e.name})
    result = write_tables(cfg, workdir, rows, t0, complete=len(rows) == len(cfg.experiments))
  log(markdown(result))
  log(f"wrote {workdir}/{cfg.name}.json, {cfg.name}.md and one plot per group "
      f"(compute {result['total_compute_s'] / 60:.1f} min)")
  return result


@contextlib.contextmanager
def workdir_lock(workdir: str):
  """Claim ``workdir`` as a study workdir ([`claim_study_workdir`][claim_study_workdir]) and hold its lock: a
  second study command on the same workdir (which would run the same pieces twice at once and
  corrupt them) stops with a one-line error. An advisory lock of the OS (flock), released
  when the process ends, however it ends."""
  claim_study_workdir(workdir)
  f = open(os.path.join(workdir, LOCK_FILE), "a+")
  try:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      f.seek(0)
      holder = f.read().strip() or "another process"
      raise SemJaxError(f"workdir {workdir} is in use by another study command ({holder}); "
                        "wait for it to finish or stop it") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()}")
    f.flush()
    yield
  finally:
    f.close()


def claim_study_workdir(workdir: str) -> None:
  """Make ``workdir`` a study workdir, or check that it is one; refuse any other folder."""
  atomic.make_dir(workdir)
  mark = os.path.join(workdir, MARK_FILE)
  if not os.path.exists(mark):
    foreign = set(os.listdir(workdir)) - {LOCK_FILE}
    if foreign and not any(os.path.exists(os.path.join(workdir, f))
                           for f in (legacy.STUDY_CONFIG, legacy.EFFICACY_CONFIG)):
      raise SemJaxError(f"workdir {workdir} is not empty and holds no study; use a new --workdir")
    atomic.write_json(mark, {"what": "sem_jax study workdir"})


def write_tables(cfg: StudyConfig, workdir: str, rows: list[dict], t0: float, complete: bool,
           extra: dict | None = None) -> dict:
  """{name}.json, {name}.md and the plots of the rows finished so far (rewritten after each).

  ``workers`` (how many experiments at most shared the machine) keeps the largest any run of
  this study in the workdir used: its rows stay in the table when a later run adds some."""
  path = os.path.join(workdir, f"{cfg.name}.json")
  extra = dict(extra or {})
  try:
    before = atomic.read_json(path).get("workers", 1) if os.path.exists(path) else 1
  except (SemJaxError, AttributeError):   # an unreadable earlier table: rewritten below
    before = 1
  workers = max(before, extra.get("workers", 1))
  if workers > 1:
    extra["workers"] = workers
  result = {"title": cfg.title, "complete": complete, "rows": rows, **extra,
            "this_session_wall_time_s": time.time() - t0,
            "total_compute_s": total_compute_s(rows),
            "config": cfg.to_dict()}
  atomic.write_json(path, result)
  atomic.write_text(os.path.join(workdir, f"{cfg.name}.md"), markdown(result))
  for group in dict.fromkeys(r["group"] for r in rows):
    plot(result, group, plot_path(workdir, cfg.name, group))
  if cfg.leaderboard:
    leaderboard.write(workdir, result, [e.to_dict() for e in cfg.experiments], cfg.title)
  return result


def total_compute_s(rows: list[dict]) -> float:
  """Seconds of compute behind ``rows``: every victim's training, and each noise's generation
  once however many rows (one per defense, on a leaderboard) train on that noise. A row that
  names no noise (clean data, or a table written before rows named it) counts its own."""
  generation = {}
  for i, r in enumerate(rows):
    generation.setdefault(r.get("noise") or ("row", i), r["generation_s"])
  return sum(generation.values()) + sum(sum(r["victim_s"].values()) for r in rows)


def plot_path(workdir: str, study: str, group: str) -> str:
  """{workdir}/{study}-{group}.png, a path separator in the group's name made '-'."""
  return os.path.join(workdir, f"{study}-{group}.png".replace("/", "-").replace("\\", "-"))


def run_experiment(cfg, e: Experiment, workdir, log, devices) -> dict | None:
  """Generate (unless clean) and train every victim of one experiment; its table row."""
  noise_dir, row = None, {"name": e.name, "group": e.group, "label": e.label or e.name,
                          "method": e.generate.method if e.generate else "clean",
                          "generation_s": 0.0, "surrogate_clean_test_accuracy": None,
                          "surrogate_robust_test_accuracy": None}
  if e.noise_dir:
    given = read_manifest(e.noise_dir, "noise run")
    noise_dir = e.noise_dir
    row.update(noise=os.path.abspath(e.noise_dir), method=given.method,
               generation_s=given.wall_time_s,
               surrogate_clean_test_accuracy=given.surrogate_clean_test_accuracy,
               surrogate_robust_test_accuracy=given.surrogate_robust_test_accuracy)
  if e.generate is not None:
    g = e.generate
    if fixed_model(g):
      g = g.replace(tap_model=os.path.abspath(
          os.path.join(workdir, "eval", f"{clean_of(cfg, e).name}-ra0")))
    noise_dir = os.path.join(workdir, "noise", e.noise_name)
    log(f"== noise: {e.noise_name} -> {noise_dir}")
    raw = generate_noise(g, noise_dir, log=log, devices=devices)
    if raw is None:
      return None
    m = Manifest(noise_dir, raw)
    row.update(noise=f"noise/{e.noise_name}", generation_s=m.wall_time_s,
               surrogate_clean_test_accuracy=m.surrogate_clean_test_accuracy,
               surrogate_robust_test_accuracy=m.surrogate_robust_test_accuracy)
  row["accuracy"], row["victim_s"] = {}, {}
  for r in e.adv_radii:
    out = os.path.join(workdir, "eval", f"{e.name}-ra{_tag(r)}")
    log(f"== victim: {e.name}, PGD-AT ρa {r:g} -> {out}")
    res = evaluate_noise(e.evaluation.replace(adv_radius=r), noise_dir, out, log=log,
                         devices=devices)
    if res is None:
      return None
    row["accuracy"][f"{r:g}"] = res["final"]["test_accuracy"]
    row["victim_s"][f"{r:g}"] = res["wall_time_s"]
    row["device_kind"] = res.get("device_kind")   # where the victims ran (cpu, NVIDIA H200...)
  return row


def _pct(v) -> str:
  return "-" if v is None else f"{100 * v:.1f}"


def markdown(result: dict) -> str:
  """One table per group: victim clean test accuracy (%) per ρa, generation cost, surrogate."""
  note = ("Clean test accuracy (%) of victims trained on the protected data (lower = better "
          "protection); '-' where not run.")
  if result.get("workers", 1) > 1:
    note += (f" Up to {result['workers']} experiments ran at once (study --workers): a time is "
             "the piece's wall time on the shared machine.")
  kinds = sorted({r["device_kind"] for r in result["rows"] if r.get("device_kind")})
  if kinds:
    note += f" Devices: {', '.join(kinds)}."
  mixed = len(kinds) > 1        # rows from several machines: each row names its own
  out = [f"# {result['title']}" + ("" if result.get("complete", True) else
                                     " (partial: the study is still running)") + "\n",
         note + "\n"]
  groups = list(dict.fromkeys(r["group"] for r in result["rows"]))
  for group in groups:
    rows = [r for r in result["rows"] if r["group"] == group]
    radii = sorted({float(k) for r in rows for k in r["accuracy"]})
    out.append(f"\n## {group}\n")
    out.append("| experiment | " + " | ".join(f"ρa {r:g}" for r in radii)
               + " | generation | surrogate clean / robust acc |" + (" device |" if mixed else ""))
    out.append("|---" * (len(radii) + 3 + mixed) + "|")
    for r in rows:
      cells = [_pct(r["accuracy"].get(f"{x:g}")) for x in radii]
      gen = "-" if r["method"] == "clean" else f"{r['generation_s']:.0f} s"
      sur = f"{_pct(r['surrogate_clean_test_accuracy'])} / {_pct(r['surrogate_robust_test_accuracy'])}"
      dev = f" {r.get('device_kind') or '-'} |" if mixed else ""
      out.append(f"| {r['label']} | " + " | ".join(cells) + f" | {gen} | {sur} |" + dev)
  return "\n".join(out) + "\n"


def plot(result: dict, group: str, path: str) -> None:
  """study-{group}.png: victim clean accuracy (%) against ρa, one line per experiment; a bar
  per experiment where the whole group has victims at one ρa only."""
  rows = [r for r in result["rows"] if r["group"] == group]
  radii = {k for r in rows for k in r["accuracy"]}
  if len(radii) == 1 and all(len(r["accuracy"]) == 1 for r in rows):
    (ra,) = radii
    bar_plot(path, [(r["label"], 100 * r["accuracy"][ra], r["method"] == "clean")
                    for r in rows],
             xlabel=f"clean test accuracy (%) of victims at PGD-AT ρa {ra}",
             xlim=(0, 100), title=group)
    return
  series = []
  for r in rows:
    xs = sorted(float(k) for k in r["accuracy"])
    series.append((r["label"], xs, [100 * r["accuracy"][f"{x:g}"] for x in xs],
                   "--" if r["method"] == "clean" else "-"))
  line_plot(path, series, xlabel="victim PGD-AT radius ρa (pixel levels /255)",
            ylabel="clean test accuracy (%)", ylim=(0, 100), title=group)
