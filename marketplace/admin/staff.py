"""The console's own audit: every export, who took it and when (read-only)."""

from django.contrib import admin

from marketplace.admin.base import ReadOnlyMixin
from marketplace.models import StaffExport


@admin.register(StaffExport)
class StaffExportAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "staff",
        "model",
        "format",
        "row_count",
        "has_full_account_numbers",
        "query",
    )
    list_filter = ("model", "format", "has_full_account_numbers", "created_at")
    search_fields = ("staff__username", "staff__nickname", "model")
    list_select_related = ("staff",)
    readonly_fields = [field.name for field in StaffExport._meta.fields]
    ordering = ("-id",)
