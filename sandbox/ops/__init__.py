"""The Lab's processes: RQ's worker class and job entry points, the stream/log consumer process, the
janitor, and what they contribute to the site (the /healthz check, the log filter)."""
