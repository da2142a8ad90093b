"""scripts/backup and scripts/restore_drill on PostgreSQL: a dump of the live database restores
into a scratch database that passes the ledger reconciliation; a broken ledger fails the drill."""

import os
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from marketplace.models.wallet import Wallet
from tests.factories import UserFactory
from tests.marketplace.wallet_helpers import credit

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(300),
]


def _url(name: str) -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{name}"


def _backup(tmp_path: Path) -> Path:
    result = subprocess.run(
        [str(ROOT / "scripts" / "backup"), "--dir", str(tmp_path / "backups")],
        env={**os.environ, "DATABASE_URL": _url(connection.settings_dict["NAME"])},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    dump = Path(result.stdout.strip().splitlines()[-1])
    assert dump.exists() and dump.with_name(dump.name + ".sha256").exists()
    return dump


def _drill(dump: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE"}}
    return subprocess.run(
        [str(ROOT / "scripts" / "restore_drill"), str(dump), "--server", _url("postgres")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )


def _scratch_databases() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'marketplace_restore_%%'"
        )
        return [row[0] for row in cursor.fetchall()]


def test_the_restored_backup_passes_the_reconciliation(tmp_path):
    seller, other = UserFactory(), UserFactory()
    credit(seller, 12_345)
    credit(seller, 55)
    credit(other, 9_900)
    before = set(_scratch_databases())
    result = _drill(_backup(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checksum ok" in result.stdout
    assert "2 wallet(s) equal their ledger" in result.stdout
    assert set(_scratch_databases()) == before  # the scratch database is dropped


def test_a_ledger_that_does_not_add_up_fails_the_drill(tmp_path):
    seller = UserFactory()
    credit(seller, 1_000)
    Wallet.objects.filter(user=seller).update(available_fen=999_999)  # money from nowhere
    with pytest.raises(Exception, match="differ from their ledger"):
        call_command("reconcile_wallets")
    result = _drill(_backup(tmp_path))
    assert result.returncode != 0
    assert "1 of 1 wallet(s) differ from their ledger" in result.stderr


def test_a_corrupted_dump_fails_its_checksum(tmp_path):
    dump = _backup(tmp_path)
    with dump.open("r+b") as file:
        file.seek(100)
        file.write(b"\xff\xff\xff\xff")
    result = _drill(dump)
    assert result.returncode != 0
    assert "passed" not in result.stdout
