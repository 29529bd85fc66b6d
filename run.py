#!/usr/bin/env python3
"""sem_jax command line. See README.md, or: python run.py --help"""
import sys

from sem_jax.cli import main

if __name__ == "__main__":
  sys.exit(main())
