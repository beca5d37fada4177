"""Shared Lab v3 (issue #25): the stream/log consumers protected like the RQ workers, limits fair to people
who share an address, no lock-out of the Lab or an account, health that tells the truth, no production
start on the development key. One test (or a few) per numbered finding, against the real stack."""

import os
import subprocess
import sys

from tests.conftest import BASE_DIR, free_port

# ---------------------------------------------------------------- 9. the development secret key


def production_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return {**env, "DJANGO_SETTINGS_MODULE": "prepsite.settings", "DJANGO_DEBUG": "0", **extra}


def test_check_deploy_fails_on_the_development_secret_key():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=BASE_DIR, env=production_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "prepsite.E001" in result.stderr
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_check_deploy_is_clean_with_a_real_key_in_production():
    env = production_env(
        DJANGO_SECRET_KEY="x7-" + "a1B2c3D4e5F6g7H8i9J0k" * 3,
        DJANGO_HTTPS="1",
        DJANGO_ALLOWED_HOSTS="prep.example.com",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://prep.example.com",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_the_web_process_refuses_to_start_on_the_development_key():
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    result = subprocess.run(
        [gunicorn, "prepsite.wsgi", "--bind", f"127.0.0.1:{free_port()}", "--workers", "1"],
        cwd=BASE_DIR, env=production_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr
