"""Views of a running consumer: the live terminal panel and the web dashboard.

Both read `ParallelConsumer.stats()` snapshots from their own small threads and keep a
short history of them (history.py); neither touches the control loop's state.
"""
