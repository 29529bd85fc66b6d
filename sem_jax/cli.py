"""Command line: ``sem-jax COMMAND --config FILE [--config.FIELD=VALUE ...] --workdir DIR``
(the same program as ``python run.py`` and ``python -m sem_jax``).

Only parsing and dispatch live here, and nothing heavy is imported before a command runs:
``--help`` answers without loading JAX. A [`SemJaxError`][SemJaxError] (bad input) is printed as one
``error:`` line on stderr with exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from sem_jax.errors import SemJaxError

PROG = "sem-jax"


def _add_study(sub) -> None:
  st = sub.add_parser("study", help="the protection study: experiments x victim radii, tables "
                      "and plots (resumable piece by piece)")
  st.add_argument("--config", required=True, action="append", help="Python config file "
                  "returning a StudyConfig (repeat: several studies, shared runs run once)")
  st.add_argument("--workdir", required=True, help="output directory (re-run to continue)")
  st.add_argument("--workers", type=int, default=1, help="experiments at once, each in its own "
                  "process (a GPU one small model leaves idle); 1: in turn, in this process")
  st.add_argument("--seed", type=int, default=0, help="run every experiment again at this "
                  "seed (names and files suffixed -seedN; rows the config seeds itself are "
                  "left out); 0: as configured")
  st.add_argument("--seeds", default="", help="run the study at each of these seeds (0,1,2 or "
                  "0-2) and write {study}-spread.md/.json: every cell's mean and range")


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog=PROG, description="sem_jax: unlearnable-example noise (SEM, REM, EM, TAP, random) and its evaluation")
  sub = p.add_subparsers(dest="command", metavar="COMMAND")
  g = sub.add_parser("generate", help="generate defensive noise into a workdir (resumes if present)",
                     epilog="Override any config field with --config.FIELD=VALUE, e.g. --config.train_steps=50")
  g.add_argument("--config", required=True, help="Python config file with get_config()")
  g.add_argument("--workdir", required=True, help="output directory (re-run to resume)")
  dist = g.add_argument_group("multi-process (jax.distributed); default: the JAX_* environment, "
                              "else a detected SLURM / Open MPI / TPU-pod launch")
  dist.add_argument("--coordinator_address", help="host:port of process 0 (JAX_COORDINATOR_ADDRESS)")
  dist.add_argument("--num_processes", type=int, help="number of processes (JAX_NUM_PROCESSES)")
  dist.add_argument("--process_id", type=int, help="this process's id (JAX_PROCESS_ID)")
  ev = sub.add_parser("evaluate", help="train a victim on protected data; report CLEAN test accuracy",
                      epilog="Override any config field with --config.FIELD=VALUE, e.g. "
                             "--config.adv_radius=4 --config.defenses=jpeg")
  ev.add_argument("--config", help="Python config file returning an EvalConfig (default: the "
                  "noise run's dataset and a victim chosen by image size)")
  ev.add_argument("--noise", required=True,
                  help="workdir of a finished generate run, or 'none' for clean data")
  ev.add_argument("--workdir", required=True, help="output directory (re-run to resume)")
  _add_study(sub)
  b = sub.add_parser("bench", help="time each jitted piece of a config's generation step",
                     epilog="Override any config field with --config.FIELD=VALUE")
  b.add_argument("--config", required=True, help="Python config file with get_config()")
  b.add_argument("--steps", type=int, default=3, help="timed repetitions per piece (median); 0: "
                 "compile only (compile time, FLOPs and XLA's memory plan)")
  b.add_argument("--warmup", type=int, default=1, help="untimed calls after compiling")
  b.add_argument("--json", help="also write the JSON result to this file")
  pr = sub.add_parser("prepare", help="decode and cache a config's dataset once (folder, "
                      "imagenet_subset), e.g. on every host of a pod before generating",
                      epilog="Override with --config.data_cache=DIR (default: "
                             "$SEM_JAX_DATA_CACHE or ~/.cache/sem_jax/datasets)")
  pr.add_argument("--config", required=True, help="a generate or evaluate config file")
  bd = sub.add_parser("bench-data", help="measure the data path at scale on a synthetic "
                      "ImageNet-shaped folder: prepare, reopen, generate, export, verify, evaluate")
  bd.add_argument("--workdir", required=True, help="where the images, cache and runs go")
  bd.add_argument("--images", type=int, default=5000, help="training images to synthesise")
  bd.add_argument("--size", type=int, default=256, help="image side in pixels")
  bd.add_argument("--classes", type=int, default=100)
  bd.add_argument("--steps", type=int, default=2, help="generation / victim steps to run")
  bd.add_argument("--json", help="also write the JSON result to this file")
  e = sub.add_parser("export", help="write the protected training set (png, png-flat, npy, npz, "
                     "tfds)")
  e.add_argument("--noise", required=True, help="workdir of a finished generate run")
  e.add_argument("--format", required=True, choices=("png", "png-flat", "npy", "npz", "tfds"),
                 help="png: class folders; png-flat: {index}.png + labels.csv (APBench / ISS); "
                      "npy: NCHW arrays for PyTorch; npz; tfds (writing needs the tfds extra)")
  e.add_argument("--out", required=True, help="new or empty output directory")
  e.add_argument("--resolution", default="image", choices=("image", "original"),
                 help="image: at the run's image_size; original (png, folder runs): every "
                      "photo at its own size, the noise resized to it")
  e.add_argument("--jpeg-quality", type=int, default=0,
                 help="with --resolution original: JPEG sources as JPEG of this quality "
                      "(1-95; 0, the default: as PNG)")
  im = sub.add_parser("import-noise", help="turn another tool's noise (array or PNG folder) "
                      "into a sem_jax noise workdir",
                      epilog="The dataset and ε come from --config (default: the built-in "
                             "defaults) and --config.FIELD=VALUE, e.g. --config.dataset=cifar10 "
                             "--config.noise_radius=8")
  im.add_argument("--source", required=True,
                  help=".npy noise array, or a folder of protected {index}.png files")
  im.add_argument("--layout", choices=("nchw", "nhwc"), help="array layout (arrays only)")
  im.add_argument("--units", choices=("levels", "fraction"),
                  help="array values: pixel levels, or fractions of 255 (arrays only)")
  im.add_argument("--config", help="Python config file naming the dataset (GenerateConfig)")
  im.add_argument("--workdir", required=True, help="new or empty output directory")
  v = sub.add_parser("verify", help="check a run's artifacts (and an export) without trusting them")
  v.add_argument("--noise", required=True, help="workdir of a finished generate run")
  v.add_argument("--export", help="also check this export directory")
  _add_detect(sub)
  z = sub.add_parser("visualize", help="grid of clean / noise / protected images")
  z.add_argument("--noise", required=True, help="workdir of a finished generate run")
  z.add_argument("--out", required=True, help="PNG file to write")
  z.add_argument("--classes", type=int, default=5)
  z.add_argument("--per_class", type=int, default=2)
  return p


def _add_detect(sub) -> None:
  dt = sub.add_parser("detect", help="how detectable a published set is: UDP's simple networks "
                      "fit its labels / tell it from clean data")
  dt.add_argument("--noise", required=True, help="workdir of a finished generate run")
  dt.add_argument("--out", help="JSON file to write (must not exist)")
  dt.add_argument("--steps", type=int, default=300, help="full-batch Adam steps per network")
  dt.add_argument("--seed", type=int, default=0)
  dt.add_argument("--max_images", type=int, default=10000, help="seeded subset size")


def _export(args, overrides) -> int:
  from sem_jax.commands.export import export
  _no_overrides(overrides)
  export(args.noise, args.format, args.out, resolution=args.resolution,
         jpeg_quality=args.jpeg_quality)
  return 0


def _import(args, overrides) -> int:
  from sem_jax.commands.import_noise import import_noise
  from sem_jax.run.config import GenerateConfig
  from sem_jax.run.configfile import apply_overrides, load_config
  cfg = (load_config(args.config, overrides) if args.config
         else apply_overrides(GenerateConfig(), overrides).validate())
  import_noise(cfg, args.source, args.workdir, args.layout, args.units)
  return 0


def _detect(args, overrides) -> int:
  from sem_jax.commands.detect import detect
  _no_overrides(overrides)
  detect(args.noise, args.out, steps=args.steps, seed=args.seed, max_images=args.max_images,
         log=lambda s: print(s, flush=True))
  return 0


def _verify(args, overrides) -> int:
  from sem_jax.commands.verify import report, verify
  _no_overrides(overrides)
  checks = verify(args.noise, args.export)
  print(report(checks), flush=True)
  return 0 if all(ok for ok, _ in checks) else 1


def _visualize(args, overrides) -> int:
  from sem_jax.commands.visualize import visualize
  _no_overrides(overrides)
  visualize(args.noise, args.out, args.classes, args.per_class)
  return 0


def _no_overrides(overrides) -> None:
  if overrides:
    raise SemJaxError(f"this command takes no --config.* overrides (got --config.{overrides[0]})")


def _split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
  """Separate ``--config.FIELD=VALUE`` (or ``--config.FIELD VALUE``) from the other arguments."""
  rest, overrides = [], []
  argv = list(argv)
  i = 0
  while i < len(argv):
    a = argv[i]
    if a.startswith("--config."):
      body = a[len("--config."):]
      if "=" not in body:
        if i + 1 >= len(argv):
          raise SemJaxError(f"{a}: missing value")
        body = f"{body}={argv[i + 1]}"
        i += 1
      overrides.append(body)
    else:
      rest.append(a)
    i += 1
  return rest, overrides


def _generate(args, overrides) -> int:
  from sem_jax.commands.generate import generate_noise
  from sem_jax.run.configfile import load_config
  from sem_jax.run.runtime import initialize_distributed
  cfg = load_config(args.config, overrides, log=lambda s: print(s, flush=True))
  initialize_distributed(args.coordinator_address, args.num_processes, args.process_id)
  # Returns None after a deliberate stop (stop_after_step or SIGTERM): a checkpoint is saved.
  generate_noise(cfg, args.workdir, log=lambda s: print(s, flush=True))
  return 0


def _evaluate(args, overrides) -> int:
  from sem_jax.commands.evaluate import evaluate_noise
  from sem_jax.run.config import EvalConfig
  from sem_jax.run.configfile import load_config
  noise = None if args.noise.strip().lower() == "none" else args.noise
  if args.config:
    cfg = load_config(args.config, overrides, EvalConfig, log=lambda s: print(s, flush=True))
  elif noise:
    from sem_jax.run.artifacts import read_manifest
    from sem_jax.run.configfile import apply_overrides
    from sem_jax.run.eval_defaults import default_eval_config
    manifest = read_manifest(noise)
    cfg, what = default_eval_config(manifest.config, manifest.noise_shape[1:])
    cfg = apply_overrides(cfg, overrides, log=lambda s: print(s, flush=True)).validate()
    print(f"victim: {what} on {cfg.dataset} (from {noise}'s manifest; --config overrides)",
          flush=True)
  else:
    raise SemJaxError("evaluate --noise none needs --config (the dataset and the victim)")
  evaluate_noise(cfg, noise, args.workdir, log=lambda s: print(s, flush=True))
  return 0


def _study(args, overrides) -> int:
  from sem_jax.run.configfile import load_config
  from sem_jax.suites.pool import run_pool
  from sem_jax.suites.study import StudyConfig, replicate, run_study
  log = lambda s: print(s, flush=True)
  from sem_jax.suites.study.spread import markdown, parse_seeds, write_spread
  if args.seeds and args.seed:
    raise SemJaxError("give --seed (one replicate) or --seeds (several and their spread), not both")
  bases = [load_config(path, overrides, StudyConfig) for path in args.config]
  seeds = parse_seeds(args.seeds) if args.seeds else (args.seed,)
  cfgs = [replicate(cfg, s) for cfg in bases for s in seeds]
  if args.workers != 1:
    finished = run_pool(cfgs, args.workdir, args.workers, log=log) is not None
  else:
    finished = all(run_study(cfg, args.workdir, log=log) is not None for cfg in cfgs)
  if finished and args.seeds:
    for cfg in bases:
      log(markdown(write_spread(cfg, args.workdir, seeds)))
      log(f"wrote {args.workdir}/{cfg.name}-spread.json and {cfg.name}-spread.md")
  return 0


def _bench(args, overrides) -> int:
  from sem_jax.commands.bench import format_table, run_bench, to_json_line
  from sem_jax.run.configfile import load_config
  result = run_bench(load_config(args.config, overrides), reps=args.steps, warmup=args.warmup)
  print(format_table(result))
  line = to_json_line(result)
  print(line, flush=True)
  if args.json:
    from sem_jax.files.atomic import write_json
    write_json(args.json, result)
  return 0


def _prepare(args, overrides) -> int:
  import time
  from sem_jax.run.configfile import load_config
  from sem_jax.run.inputs import dataset_for
  t0 = time.time()
  ds = dataset_for(load_config(args.config, overrides))
  print(f"{ds.name}: {ds.num_train} training and {len(ds.test_labels)} test images "
        f"{ds.image_shape}, {ds.num_classes} classes, ready in {time.time() - t0:.1f} s", flush=True)
  return 0


def _bench_data(args, overrides) -> int:
  from sem_jax.commands.bench_data import format_rows, run_bench_data
  result = run_bench_data(args.workdir, args.images, args.size, args.classes, args.steps)
  print(format_rows([result]), flush=True)
  if args.json:
    from sem_jax.files.atomic import write_json
    write_json(args.json, result)
  return 0


_COMPILING = ("generate", "evaluate", "study", "bench")


_URL_WORKDIRS = ("generate", "evaluate", "export", "verify", "visualize")


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  try:
    rest, overrides = _split_overrides(argv)
    if rest[:1] == ["benchmark-efficacy"]:
      raise SemJaxError("benchmark-efficacy is now a study: run `study --config "
                        "configs/study/efficacy_mnist5k.py --workdir W` (its workdirs continue)")
    args = _parser().parse_args(rest)
    if args.command is None:
      _parser().print_help()
      return 2
    from sem_jax.files.atomic import check_local
    # URLs (gs://...) are accepted where fs.py carries every file; orchestration folders, the
    # import source and bench's JSON stay local.
    local = ("source", "json") + (() if args.command in _URL_WORKDIRS else ("workdir",))
    for name in local:
      if isinstance(getattr(args, name, None), str):
        check_local(getattr(args, name), f"--{name}")
    if args.command in _COMPILING:
      from sem_jax.run.runtime import (enable_compilation_cache, quiet_orphaned_write_tasks,
                                       request_deterministic_gpu)
      quiet_orphaned_write_tasks()
      request_deterministic_gpu()   # before the first computation creates the backend
      enable_compilation_cache()
    commands = {"generate": _generate, "evaluate": _evaluate, "study": _study,
                "bench": _bench, "export": _export, "import-noise": _import, "verify": _verify,
                "detect": _detect, "visualize": _visualize, "prepare": _prepare,
                "bench-data": _bench_data}
    return commands[args.command](args, overrides)
  except SemJaxError as e:
    print(f"error: {e}", file=sys.stderr, flush=True)
    return 2
  except OSError as e:   # a path the user gave that cannot be read or written
    where = f": {e.filename}" if e.filename else ""
    print(f"error: {e.strerror or e}{where}", file=sys.stderr, flush=True)
    return 2
  except KeyboardInterrupt:
    print("error: interrupted", file=sys.stderr)
    return 130


if __name__ == "__main__":
  sys.exit(main())
