# Rules of the stats stage; helper functions live in scripts/pixelflow/plan_stats.py.
