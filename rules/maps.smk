# Rules of the maps stage; helper functions live in scripts/pixelflow/plan_maps.py.
