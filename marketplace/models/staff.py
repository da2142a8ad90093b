"""What staff did in the console that no other row records: every export of a list (who, when,
which list, filters, how many rows, and whether full account numbers were in it)."""

from django.conf import settings
from django.db import models


class StaffExport(models.Model):
    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "Excel"

    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="staff_exports"
    )
    # "app_label.model_name" of the exported list.
    model = models.CharField(max_length=100)
    format = models.CharField(max_length=10, choices=Format.choices)
    # The changelist's query string (filters, search, ordering): what exactly was taken out.
    query = models.CharField(max_length=1000, blank=True)
    row_count = models.PositiveIntegerField()
    has_full_account_numbers = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("-id",)

    def __str__(self) -> str:
        return f"{self.model} ({self.format}, {self.row_count})"
