"""Code shared by the Cloud Functions and the scripts of vision-to-tag."""

import os

# numpy's OpenBLAS otherwise starts a thread per core for the fingerprint's tiny products
# and spins them: 10-100× the CPU time of one thread (docs/decisions.md, issue 40). Set
# here, before any part of the service imports numpy, for every entry point.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
