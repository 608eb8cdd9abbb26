"""The Dagster instance's own parts: a run launcher whose runs are watched, and the check it uses.

``liveness`` answers "is this process still the one that started the run?" from /proc, without Dagster;
``run_worker`` applies it to a run of the instance (the pid of its RUN_START event) and marks dead runs
failed; ``run_launcher`` is the thin Dagster class that lets the run-monitoring daemon ask the same question.
"""
