"""Reconciles one day against WeChat Pay's bills (docs/payout.md): `manage.py reconcile
--date 2026-12-01`; without --date, yesterday (China time). Safe to run again."""

from django.core.management.base import BaseCommand, CommandError

from marketplace.actions import reconciliation
from marketplace.errors import DomainError


class Command(BaseCommand):
    help = "Match a day's WeChat Pay trade and fund-flow bills against our books."

    def add_arguments(self, parser):
        parser.add_argument("--date", help="YYYY-MM-DD (China time); default: yesterday")

    def handle(self, *args, **options):
        try:
            day = (
                reconciliation.parse_day(options["date"])
                if options.get("date")
                else reconciliation.yesterday()
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        record = reconciliation.reconcile_day(day=day)
        open_items = record.items.filter(is_resolved=False).count()
        self.stdout.write(
            f"{record.date}: {record.status}; {open_items} open item(s); "
            f"books {'add up' if record.is_books_balanced else 'DO NOT add up'}; "
            f"fees {record.fees_fen} fen"
            + (f"; error: {record.last_error}" if record.last_error else "")
        )
        if record.status == record.Status.FAILED:
            raise CommandError(record.last_error)
