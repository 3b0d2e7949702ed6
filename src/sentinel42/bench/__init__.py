"""Benchmarks that print figures (``sentinel42 bench ...``), never timed tests.

``cycle``: one full trading cycle in-process, beside the naive way of doing the same work;
``trigger``: a forced trading run through a running Prefect server and worker; ``measure``:
stages, peak RSS and a fresh process per measured case, shared by every benchmark.
"""
