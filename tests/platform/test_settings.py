"""Settings from the environment: production requirements, check --deploy, bad keys."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "ALPHA_ENV": "production",
    "DJANGO_SECRET_KEY": "p" * 20 + "-production-secret-key-with-enough-entropy-0123456789",
    "DATABASE_URL": "sqlite:////tmp/alpha-prod-check.sqlite3",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "ALLOWED_HOSTS": "alpha.example.com",
    "CREDENTIALS_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
}


def run_manage(*args, env):
    clean = {k: v for k, v in os.environ.items()
             if k not in PRODUCTION_ENV and k not in ("DEBUG", "ALPHA_VAR_DIR")}
    clean["DJANGO_SETTINGS_MODULE"] = "alpha_platform.settings"  # not the suite's tests.settings
    clean.update(env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=clean,
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_in_production():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS",
                                     "CREDENTIALS_ENCRYPTION_KEYS"])
def test_missing_production_variable_fails_naming_it(missing):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert f"{missing} is required when ALPHA_ENV=production" in result.stderr


def test_invalid_encryption_key_is_named_but_not_echoed():
    bad = "not-a-fernet-key-but-secret-material"
    result = run_manage("check", env={**PRODUCTION_ENV, "CREDENTIALS_ENCRYPTION_KEYS": f"{Fernet.generate_key().decode()},{bad}"})
    assert result.returncode != 0
    assert "CREDENTIALS_ENCRYPTION_KEYS: key #2 is not a valid Fernet key" in result.stderr
    assert bad not in result.stderr


def test_unknown_alpha_env_is_refused():
    result = run_manage("check", env={"ALPHA_ENV": "staging"})
    assert result.returncode != 0 and "ALPHA_ENV must be one of" in result.stderr


def test_development_generates_one_key_and_reuses_it(tmp_path):
    env = {"ALPHA_ENV": "development", "ALPHA_VAR_DIR": str(tmp_path),
           "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    assert run_manage("check", env=env).returncode == 0
    key_file = tmp_path / "credentials.key"
    first = key_file.read_text()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert run_manage("check", env=env).returncode == 0
    assert key_file.read_text() == first
    Fernet(first.strip())  # a valid key


def test_production_security_settings():
    # Under the test settings these are off; the production branch is exercised by check --deploy above.
    result = run_manage("shell", "-c", "from django.conf import settings as s; "
                        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.DEBUG, s.SECURE_HSTS_SECONDS > 0)",
                        env=PRODUCTION_ENV)
    assert result.stdout.strip().splitlines()[-1].split() == ["True", "True", "False", "True"], result.stderr
