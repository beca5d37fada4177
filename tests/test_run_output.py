"""What `make run` prints: one line per Lab attempt, no traceback for an injected fault, no poll lines."""

import json
import operator
import re
import subprocess
import sys
import time
import urllib.error

import pytest
from django.core.management import call_command
from redis import Redis
from rq import Callback, Queue

from tests.conftest import BASE_DIR, wait_for
from tests.test_devstack import HEALTHY, get, run_stack

pytestmark = [pytest.mark.process, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        call_command("load_content", verbosity=0)
    with run_stack(tmp_path_factory.mktemp("run") / "stack.log") as stack:
        assert {name: stack.health.get(name) for name in HEALTHY} == HEALTHY, stack.output()
        yield stack


def attempt_lines(output: str, experiment_id: int) -> list[str]:
    return re.findall(rf"lab exp {experiment_id} job \d+ attempt .*", output)


def test_a_poison_run_prints_one_line_per_attempt_and_polls_are_not_access_logged(stack):
    since = stack.mark()
    command = [sys.executable, "manage.py", "experiment", "run", "poison", "--jobs", "10", "--seed", "7"]
    command += ["--set", "backoff_base_s=1", "--set", "backoff_cap_s=2", "--json"]
    run = subprocess.run(command, env=stack.env, cwd=BASE_DIR, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.splitlines()[-1])
    assert (summary["finished"], summary["dead_lettered"], summary["attempts"]) == (True, 10, 40)
    exp = summary["id"]

    wait_for(lambda: len(attempt_lines(stack.output(since), exp)) >= 40, 10, message="40 attempt lines")
    time.sleep(0.5)  # nothing more may follow
    output = stack.output(since)
    lines = attempt_lines(output, exp)
    assert len(lines) == 40, "\n".join(lines)
    seen = set()
    for line in lines:
        job, attempt, next_step = re.fullmatch(
            rf"lab exp {exp} job (\d+) attempt (\d)/4: PoisonMessage \(injected\) -> (retry in \ds|dead-lettered)",
            line,
        ).groups()
        assert (next_step == "dead-lettered") == (attempt == "4"), line
        seen.add((int(job), int(attempt)))
    assert seen == {(job, attempt) for job in range(1, 11) for attempt in range(1, 5)}
    assert "Traceback" not in output
    assert f"lab-{exp}-" not in output  # RQ's own per-job lines are gone

    # htmx polls are not access-logged; page loads and plain GETs of the same URLs are.
    since = stack.mark()
    poll = {"HX-Request": "true", "User-Agent": "test-poller"}
    for _ in range(3):
        assert get(stack.base + "/topics/queueing/personal/", poll)[0] == 200
        assert get(stack.base + "/topics/queueing/drill-status/", poll)[0] == 200
        # The CLI's experiment is not this visitor's: 404, which Django logs as a warning.
        with pytest.raises(urllib.error.HTTPError, match="404"):
            get(stack.base + f"/sandbox/experiments/{exp}/live/", poll)
    assert get(stack.base + "/topics/queueing/", {"User-Agent": "test-browser"})[0] == 200
    assert get(stack.base + "/topics/queueing/personal/", {"User-Agent": "test-browser"})[0] == 200
    wait_for(lambda: stack.output(since).count("test-browser") == 2, 10, message="the page loads' access lines")
    output = stack.output(since)
    assert '"GET /topics/queueing/ HTTP/1.1" 200' in output
    assert '"GET /topics/queueing/personal/ HTTP/1.1" 200' in output
    assert "test-poller" not in output
    assert f"Not Found: /sandbox/experiments/{exp}/live/" in output


def test_a_real_error_in_a_lab_job_keeps_its_traceback(stack):
    since = stack.mark()
    connection = Redis.from_url(stack.env["REDIS_URL"])
    # A Lab job (its id and failure callback are the Lab's) that fails with a bug rather than a fault.
    Queue("lab", connection=connection).enqueue(
        operator.truediv, 1, 0, job_id="lab-999999-1", on_failure=Callback("sandbox.jobs.on_failure")
    )
    wait_for(lambda: "ZeroDivisionError: division by zero\n" in stack.output(since), 30, message="the traceback")
    output = stack.output(since)
    assert "lab exp 999999 job 1 attempt 1/1: ZeroDivisionError: division by zero -> dead-lettered" in output
    assert "Traceback (most recent call last)" in output
