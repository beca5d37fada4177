"""gunicorn's logging and control socket for `make run`; the Procfile's `web` sets bind and workers."""

import os
import re
from pathlib import Path

from gunicorn.glogging import Logger

_port = os.environ.get("PORT", "8000")  # honcho's, as in the Procfile's --bind

accesslog = "-"
# gunicorn's control socket defaults to one path per user (~/.gunicorn/gunicorn.ctl), which a second
# stack on the machine would take over; one per port, like var/redis-<port>/.
control_socket = str(Path(__file__).resolve().parent.parent / "var" / f"gunicorn-{_port}.ctl")

# htmx requests a page makes by itself: the live view's once-a-second poll and the per-visitor fragments.
POLLS = re.compile(r"/sandbox/experiments/\d+/live/|/topics/[^/]+/(personal|drill-status)/")


class QuietPollLogger(Logger):
    """Access lines for page loads and form posts, not for polls, which would drown them.

    A failing poll still shows: Django logs 4xx as warnings and 5xx with a traceback.
    """

    def access(self, resp, req, environ, request_time):
        poll = (
            environ.get("REQUEST_METHOD") == "GET"
            and environ.get("HTTP_HX_REQUEST") == "true"
            and POLLS.fullmatch(environ.get("PATH_INFO", ""))
        )
        if not poll:
            super().access(resp, req, environ, request_time)


logger_class = QuietPollLogger
