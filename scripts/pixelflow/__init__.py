"""pixelflow core: pure functions on numpy arrays and paths used by the workflow's scripts.

Importing the package itself stays cheap (standard library only) because the
Snakefile imports :mod:`pixelflow.plan` while it is parsed.
"""

__version__ = "0.1.0"
