"""The demo: parafka's story told by measuring it (`make demo`, `python -m examples.demo`).

Each scene lives in its own module (catalog.py lists them) and returns its figures and
checks; runner.py plays them and prints the summary, view.py shows them live.
"""
