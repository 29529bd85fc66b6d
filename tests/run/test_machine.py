"""The machine record (run.machine): what decides a run's bits, read from /proc/cpuinfo."""
from sem_jax.run import machine

EPYC = """processor	: 0
vendor_id	: AuthenticAMD
cpu family	: 25
model		: 17
model name	: AMD EPYC 9B14
flags		: fpu sse4_2 avx avx2 fma avx512f avx512bw avx512vl avx512_bf16 aes

processor	: 1
vendor_id	: GenuineIntel
model name	: not the first processor
"""

GRAVITON = """processor	: 0
BogoMIPS	: 243.75
Features	: fp asimd evtstrm aes sve sve2 i8mm bf16
CPU implementer	: 0x41
CPU architecture: 8
CPU part	: 0xd4f
"""


def test_the_first_processors_model_family_and_vector_flags_are_read(tmp_path):
  x86, arm = tmp_path / "x86", tmp_path / "arm"
  x86.write_text(EPYC)
  arm.write_text(GRAVITON)
  assert machine.cpu(str(x86)) == {
      "cpu": "AMD EPYC 9B14", "cpu_vendor": "AuthenticAMD", "cpu_family": 25, "cpu_model": 17,
      "cpu_flags": ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                    "avx512_bf16"]}
  a = machine.cpu(str(arm))
  assert (a["cpu_vendor"], a["cpu_family"], a["cpu_model"]) == ("0x41", 8, 0xd4f)
  assert a["cpu_flags"] == ["asimd", "sve", "sve2", "bf16", "i8mm"]
  assert machine.cpu(str(tmp_path / "none"))["cpu_family"] is None   # no /proc: still a record


def test_the_line_names_the_cpu_and_its_vector_width_and_runs_compare_by_it(tmp_path):
  path = tmp_path / "x86"
  path.write_text(EPYC)
  here = {**machine.cpu(str(path)), "accelerator": None}
  assert machine.line(here) == "AMD EPYC 9B14 (AuthenticAMD family 25 model 17, AVX-512)"
  older = {**here, "cpu_family": 23, "cpu_model": 49,
           "cpu_flags": ["sse4_2", "avx", "avx2", "fma"]}
  assert machine.line(older).endswith("family 23 model 49, AVX2)")
  assert machine.same_numerics(here, dict(here)) is True
  assert machine.same_numerics(here, older) is False
  assert machine.same_numerics(here, {**here, "cpu_flags": here["cpu_flags"][:4]}) is False
  h200 = {**here, "accelerator": "NVIDIA H200"}
  assert machine.line(h200).startswith("NVIDIA H200 on AMD EPYC 9B14")
  assert machine.same_numerics(h200, {**older, "accelerator": "NVIDIA H200"}) is True
  assert machine.same_numerics(h200, here) is False
  assert machine.same_numerics(None, here) is None and machine.line(None) == "not recorded"


def test_this_process_describes_its_own_cpu():
  d = machine.describe()
  assert d["accelerator"] is None and d["cpu"] and d["jax_version"]
  assert machine.same_numerics(d, machine.describe())
