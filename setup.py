"""Build script for the optional compiled kernels (the fused optimizer updates in src/ffnn/_kernels.c).

The extension is optional: without a C compiler the build goes on and ffnn uses its NumPy code, which gives the
same numbers. -ffp-contract=off keeps the compiler from fusing a * b + c into one rounding, so the kernels round
exactly like NumPy.
"""

import sys

from setuptools import Extension, setup

args = [] if sys.platform == "win32" else ["-O3", "-ffp-contract=off", "-fno-math-errno"]

setup(ext_modules=[Extension("ffnn._kernels", ["src/ffnn/_kernels.c"], extra_compile_args=args, optional=True)])
