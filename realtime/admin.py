"""Staff: the retention setting, and a read-only view of the event log for support."""

from django.contrib import admin

from marketplace.admin.base import ReadOnlyMixin, SingletonSettingsMixin
from realtime.models import Event, Notification, RealtimeSettings


@admin.register(RealtimeSettings)
class RealtimeSettingsAdmin(SingletonSettingsMixin, admin.ModelAdmin):
    list_display = ["__str__", "event_retention_days", "updated_at"]
    readonly_fields = ["updated_at"]


@admin.register(Event)
class EventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["id", "user", "seq", "type", "created_at", "notified_at"]
    list_filter = ["type"]
    search_fields = ["user__nickname", "user__username", "=user__id"]
    list_select_related = ["user"]
    ordering = ["-id"]
    show_full_result_count = False
    raw_id_fields = ["user"]

    # The log is what clients resume from: staff read it, nobody edits it.



@admin.register(Notification)
class NotificationAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """The notification centre's entries (support reads what a user was told)."""

    list_display = ["id", "user", "type", "target_type", "target_id", "created_at", "read_at"]
    list_filter = ["type"]
    search_fields = ["=user__id", "user__nickname"]
    list_select_related = ["user"]
    ordering = ["-id"]
    show_full_result_count = False
    raw_id_fields = ["user"]
