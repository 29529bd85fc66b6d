"""What a data thief does with the published images: the victim's training step, its
defenses (filters, ISS, bit-depth reduction, standardisation, mixup / cutmix, UEraser, the D-VAE
purifier) and the detection of poisons.

Imports the base modules of [`sem_jax.core`][sem_jax.core] and every sub-package below it.
"""
