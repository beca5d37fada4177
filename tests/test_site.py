import pytest
from django.urls import reverse
from rq import Queue

from tests.conftest import wait_for


@pytest.mark.django_db  # Home shows the visitor's plan and Continue (issue #23)
def test_home_page_introduces_the_three_parts(client):
    response = client.get(reverse("home"))
    assert response.status_code == 200
    html = response.content.decode()
    for part in ("Study", "Drills", "Lab"):
        assert f">{part}</a>" in html
    assert "htmx" in html  # {% htmx_script %} emitted the script tag


@pytest.mark.django_db
def test_healthz_reports_redis_and_zero_workers_when_none_run(client, redis_conn):
    body = client.get(reverse("healthz")).json()
    assert body["database"] == "ok"
    assert body["redis"] == "ok"
    assert body["workers"] == 0 or body["workers"] >= 2  # other tests may have started the pool


@pytest.mark.django_db(transaction=True)
def test_healthz_counts_running_workers_and_scheduler(client, rq_workers):
    # The pool replaces a worker another test killed within seconds (it said 1 worker once, mid-replacement).
    body = wait_for(
        lambda: (b := client.get(reverse("healthz")).json())["scheduler"] and b["workers"] >= 2 and b,
        15,
        message="the scheduler lock and both workers",
    )
    assert body["redis"] == "ok"
    assert body["scheduler"] is True


@pytest.mark.django_db
def test_healthz_is_503_when_redis_is_stopped(client, redis_control):
    redis_control.stop()
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json() == {
        "status": "error", "database": "ok", "redis": "error", "redis_memory": None, "workers": 0, "consumers": 0,
        "scheduler": False, "janitor_age_s": None, "problems": ["Redis is not answering"],
    }  # fmt: skip
    redis_control.start()
    assert client.get(reverse("healthz")).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_an_enqueued_job_and_its_result_is_read_back(rq_workers, redis_conn):
    queue = Queue("default", connection=redis_conn)
    job = queue.enqueue("operator.add", 20, 22, result_ttl=60)
    wait_for(lambda: job.refresh() or job.is_finished, 15, message="job to finish")
    assert job.return_value() == 42
    assert job.worker_name in {w.name for w in rq_workers.workers()}


@pytest.mark.django_db
def test_rq_dashboard_and_admin_refuse_anonymous_visitors(client):
    for url in ("/admin/", "/admin/rq/"):
        response = client.get(url)
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]


@pytest.mark.django_db
def test_rq_dashboard_opens_for_staff(admin_client):
    response = admin_client.get("/admin/rq/")
    assert response.status_code == 200
    assert b"lab" in response.content
