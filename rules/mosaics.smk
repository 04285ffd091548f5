# Rules of the mosaics stage; helper functions live in scripts/pixelflow/plan_mosaics.py.
