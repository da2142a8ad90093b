"""Account deletions, personal-data exports and retention runs, for support (docs/privacy.md).

Read-only: a deletion closes and erases through its actions only, never by hand here."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from marketplace.admin.base import ReadOnlyMixin
from marketplace.models import AccountDeletion, DataExport, RetentionRun


@admin.register(AccountDeletion)
class AccountDeletionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "user", "status", "closed_at", "erase_after", "erased_at", "restored_at")
    list_filter = ("status", "closed_at", "erase_after")
    # Support finds a request by the user's id or (until erased) their nickname.
    search_fields = ("=user__id", "user__nickname")
    list_select_related = ("user",)
    # The openid is kept only to let its owner restore the account: support never needs it.
    exclude = ("openid",)
    ordering = ("-id",)


@admin.register(DataExport)
class DataExportAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "user", "status", "created_at", "ready_at", "expires_at")
    list_filter = ("status", "created_at")
    search_fields = ("=user__id",)
    list_select_related = ("user",)
    # The file is the user's personal data: staff see that it exists, not what it says.
    exclude = ("file",)
    ordering = ("-id",)


@admin.register(RetentionRun)
class RetentionRunAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "started_at", "finished_at", "deleted_total", "counts")
    list_filter = ("started_at",)
    ordering = ("-id",)

    @admin.display(description=_("deleted"))
    def deleted_total(self, obj: RetentionRun) -> int:
        return sum(obj.counts.values())
