"""The Lab's logging filter for `make run`'s output (named in LOGGING in settings)."""

import logging

from sandbox.engine.live import parse_job_id


class QuietLabJobs(logging.Filter):
    """Drop RQ's per-job lines (dequeued, Job OK, retry scheduled, horse killed) for Lab jobs.

    sandbox.ops.jobs logs one line per Lab attempt instead. RQ's errors stay: a real failure keeps its
    traceback. Lines about other jobs, and worker start/stop lines, are untouched.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("rq.") or record.levelno >= logging.ERROR:
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        return not any(isinstance(arg, str) and parse_job_id(arg) for arg in args)
