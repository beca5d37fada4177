"""The Lab's engine: commands on experiments (experiments.py), the live record in Redis (live.py, keys.py),
the message handler ("charge order #k" with its faults, handler.py), retry and fault plans, limits, fair
share, and the only module that knows RQ's storage (rq_storage.py). No web, no drawing."""
