"""The machine a run computes on, as far as it decides the run's bits.

XLA compiles a program for the CPU it runs on: another CPU generation (another vector width,
AVX-512 or not) orders floating-point sums differently, a surrogate's training diverges from
the first steps, and the same config and seed give other noise and other victim accuracies
(on MNIST-5k, one seed's victim moves by 10 points and more; docs/protection.md). Runs repeat
bit for bit on the same CPU model and device count, or on the same GPU model with
deterministic kernels (docs/artifacts.md). Every manifest, result and study row records
[`describe`][describe] so that two runs can be told apart.
"""
from __future__ import annotations

import os
import platform

import jax

# CPU features that change which instructions XLA:CPU emits (vector width, fused multiply-add,
# bf16 and matrix units), by their /proc/cpuinfo names (x86 ``flags``, Arm ``Features``).
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
                "asimd", "asimdhp", "sve", "sve2", "bf16", "i8mm")
CPU_KEYS = ("cpu", "cpu_vendor", "cpu_family", "cpu_model", "cpu_flags")


def _cpuinfo(path: str = "/proc/cpuinfo") -> dict:
  """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
  fields: dict = {}
  try:
    with open(path, encoding="utf-8", errors="replace") as f:
      for line in f:
        if not line.strip():
          if fields:
            break
          continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
  except OSError:
    pass
  return fields


def _int(value) -> int | None:
  try:
    return int(str(value), 0)
  except (TypeError, ValueError):
    return None


def cpu(cpuinfo_path: str = "/proc/cpuinfo") -> dict:
  """{cpu: model name, cpu_vendor, cpu_family, cpu_model (numbers; None where the system does
  not say), cpu_flags: the [`VECTOR_FLAGS`][VECTOR_FLAGS] it has}."""
  info = _cpuinfo(cpuinfo_path)
  flags = set((info.get("flags") or info.get("features") or "").split())
  name = (info.get("model name") or info.get("hardware") or platform.processor()
          or platform.machine() or "unknown")
  return {"cpu": " ".join(name.split()),
          "cpu_vendor": info.get("vendor_id") or info.get("cpu implementer") or None,
          "cpu_family": _int(info.get("cpu family") or info.get("cpu architecture")),
          "cpu_model": _int(info.get("model") or info.get("cpu part")),
          "cpu_flags": [f for f in VECTOR_FLAGS if f in flags]}


def describe() -> dict:
  """The CPU ([`cpu`][cpu]) plus the accelerator the run's devices are (``accelerator``: the
  device kind, e.g. "NVIDIA H200"; None on CPU) and the JAX version."""
  dev = jax.devices()[0]
  return {**cpu(), "accelerator": None if dev.platform == "cpu" else dev.device_kind,
          "jax_version": jax.__version__}


def line(m: dict | None) -> str:
  """One line naming the machine of a record, e.g. "AMD EPYC (AuthenticAMD family 25 model
  17, AVX-512)"; "not recorded" for a record made before machines were recorded."""
  if not m:
    return "not recorded"
  ident = " ".join(p for p in (m.get("cpu_vendor"),
                               None if m.get("cpu_family") is None else f"family {m['cpu_family']}",
                               None if m.get("cpu_model") is None else f"model {m['cpu_model']}")
                   if p)
  flags = m.get("cpu_flags") or []
  width = ("AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags
           else "SVE" if "sve" in flags else "no AVX2" if flags else "")
  detail = ", ".join(p for p in (ident, width) if p)
  text = f"{m.get('cpu', 'unknown CPU')}" + (f" ({detail})" if detail else "")
  return f"{m['accelerator']} on {text}" if m.get("accelerator") else text


def same_numerics(a: dict | None, b: dict | None) -> bool | None:
  """Whether runs on the machines ``a`` and ``b`` compute the same bits: the same accelerator
  (a GPU's numerics do not depend on its host CPU), or on CPU the same CPU model and vector
  flags. None where either record is missing."""
  if not a or not b:
    return None
  if a.get("accelerator") or b.get("accelerator"):
    return a.get("accelerator") == b.get("accelerator")
  return all(a.get(k) == b.get(k) for k in CPU_KEYS)
