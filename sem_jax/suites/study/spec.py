"""A study's config: its experiments (noise, victims at several ρa) and its replicates."""
from __future__ import annotations

import dataclasses
import re

from sem_jax.core.crafting.methods import METHODS
from sem_jax.errors import SemJaxError
from sem_jax.run.config import EvalConfig, GenerateConfig, from_dict
from sem_jax.run.configfile import apply_overrides


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
    change = lambda c: apply_overrides(c, [f"{field}={value}"], prefix=f"{part}.")
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
        which = ("a PGD-AT (ρa > 0) victim is the reference model" if _robust_reference(e.generate)
                 else "its ρa = 0 victim is the fixed model")
        raise SemJaxError(f"{e.generate.method} experiment {e.name!r} needs a clean experiment in group "
                          f"{e.group!r} ({which})")
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
  """Whether generation config ``g`` (or None) crafts against a model the study trains
  first: its group's clean ρa = 0 victim (tap, hypo), or its clean PGD-AT victim (entf's
  adversarially trained reference)."""
  return g is not None and (METHODS[g.method].fixed_model or _robust_reference(g))


def _robust_reference(g) -> bool:
  return g is not None and METHODS[g.method].kind == "reference"


def clean_of(cfg: StudyConfig, e: Experiment) -> Experiment | None:
  """The clean experiment of ``e``'s group whose victim ``e``'s generation attacks: one with
  a ρa = 0 victim (tap, hypo), one with a PGD-AT victim (entf); None if the group has none."""
  robust = _robust_reference(e.generate)
  return next((c for c in cfg.experiments if c.group == e.group and c.generate is None
               and (any(r > 0 for r in c.adv_radii) if robust else 0.0 in c.adv_radii)), None)


def reference_radius(clean: Experiment, g) -> float:
  """The ρa of the victim of ``clean`` that generation ``g`` attacks: 0 (tap, hypo), the
  largest of its radii (entf)."""
  return max(clean.adv_radii) if _robust_reference(g) else 0.0
