"""The sandbox is a Django app of its own, installed, migrated and routed only where
settings.SANDBOX_ENABLED (issue 13): production builds have no sandbox tables, URLs or tasks.

Settings are read once per process, so the switched-off case runs in a subprocess with the
embedded defaults (no MARKETPLACE_ENV, SQLite in a temporary directory) and SANDBOX_ENABLED=0.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from django.apps import apps
from django.urls import resolve
from django.utils.module_loading import autodiscover_modules
from huey.contrib.djhuey import HUEY

ROOT = Path(__file__).resolve().parent.parent.parent

# Everything the switch decides, as the process sees it after setup: the app registry, the URL
# resolver, the 404 a client gets, the periodic tasks a Huey consumer would load (run_huey
# autodiscovers every installed app's tasks module) and whether building every partner client
# imported the sandbox.
FACTS = """
import json, sys
import django
django.setup()
from django.apps import apps
from django.test import Client
from django.urls import Resolver404, resolve
from django.utils.module_loading import autodiscover_modules
from huey.contrib.djhuey import HUEY
from marketplace.gateways import kuaidi100, wechat, wechatpay

kuaidi100._session()
wechat.client()
wechatpay._install_session()
autodiscover_modules("tasks")
try:
    resolve("/sandbox/wechat/login-code")
    routed = True
except Resolver404:
    routed = False
status = Client().post(
    "/sandbox/wechat/login-code", {"openid": "o"}, content_type="application/json"
).status_code if not routed else None
print(json.dumps({
    "labels": [config.label for config in apps.get_app_configs()],
    "routed": routed,
    "status": status,
    "periodic": sorted(type(task).__module__ for task in HUEY._registry.periodic_tasks),
    "imported": sorted(name for name in sys.modules if "sandbox" in name.split(".")),
}))
"""


def _env(tmp_path: Path, sandbox_enabled: str) -> dict[str, str]:
    dropped = ("DATABASE_URL", "REDIS_URL", "MARKETPLACE_ENV", "SANDBOX_ENABLED", "WECHAT_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(dropped)}
    env.update(
        DJANGO_SETTINGS_MODULE="project.settings",
        MARKETPLACE_VAR_DIR=str(tmp_path),
        SANDBOX_ENABLED=sandbox_enabled,
    )
    return env


def _run(tmp_path: Path, sandbox_enabled: str, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=_env(tmp_path, sandbox_enabled),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result


def _facts(tmp_path: Path, sandbox_enabled: str) -> dict:
    return json.loads(_run(tmp_path, sandbox_enabled, "-c", FACTS).stdout.splitlines()[-1])


def _planned_apps(tmp_path: Path, sandbox_enabled: str) -> set[str]:
    plan = _run(tmp_path, sandbox_enabled, "manage.py", "migrate", "--plan").stdout
    # Migrations are the unindented lines after the heading ("app_label.0001_name"); their
    # operations follow, indented.
    migrations = plan.splitlines()[1:]
    return {line.split(".")[0] for line in migrations if line and not line[0].isspace()}


def test_switched_off_the_sandbox_is_not_installed_routed_scheduled_or_imported(tmp_path):
    facts = _facts(tmp_path, "0")
    assert "sandbox" not in facts["labels"] and "marketplace" in facts["labels"]
    assert facts["routed"] is False
    assert facts["status"] == 404
    assert not [module for module in facts["periodic"] if "sandbox" in module.split(".")]
    assert facts["periodic"]  # the app's own sweepers are still there
    assert facts["imported"] == []


def test_switched_off_migrate_plans_no_sandbox_migration(tmp_path):
    planned = _planned_apps(tmp_path, "0")
    assert "marketplace" in planned and "negotiation" in planned
    assert "sandbox" not in planned


def test_switched_on_the_sandbox_is_installed_routed_scheduled_and_migrated(tmp_path):
    facts = _facts(tmp_path, "1")
    assert "sandbox" in facts["labels"]
    assert facts["routed"] is True
    assert {"sandbox.kuaidi100", "sandbox.tasks"} <= set(facts["periodic"])
    assert "sandbox" in _planned_apps(tmp_path, "1")


def test_the_embedded_test_settings_keep_the_sandbox():
    config = apps.get_app_config("sandbox")
    # The label the embedded databases under var/ recorded their sandbox migrations under.
    assert (config.name, config.label) == ("sandbox", "sandbox")
    assert resolve("/sandbox/kuaidi100/advance").namespace == "sandbox"
    autodiscover_modules("tasks")  # as the Huey consumer does
    periodic = {type(task).__module__ for task in HUEY._registry.periodic_tasks}
    assert {"sandbox.kuaidi100", "sandbox.tasks"} <= periodic
