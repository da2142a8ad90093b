"""Staff view of conversations (SPEC §4a): metadata for every conversation, message contents
only of a conversation with a report (each such read recorded), and the report queue with its
three decisions. Rows change only through the actions."""

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from marketplace.admin.base import ReadOnlyMixin, SignedForReaderMixin
from marketplace.errors import DomainError
from marketplace.media import private_url
from negotiation import conversations
from negotiation.models import Conversation, ConversationAccess, Message, Report

CONTEXT = 5  # messages shown either side of a reported one


def image_link(message: Message, reader_id: int | None):
    """A message's image as a link signed for the staff member reading the page (chat images
    are private: no URL of their own; marketplace/media.py). Pages show it only for a
    conversation with a report, which is also when the link opens."""
    if message.image is None or reader_id is None:
        return ""
    url = private_url(message.image.file, reader_id=reader_id)
    return format_html(' <a href="{}" target="_blank" rel="noopener">{}</a>', url, _("view image"))


class FlaggedFilter(admin.SimpleListFilter):
    title = _("flagged messages")
    parameter_name = "flagged"

    def lookups(self, request, model_admin):
        return [("yes", _("has flagged messages"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(flagged_count__gt=0)
        return queryset


@admin.register(Conversation)
class ConversationAdmin(SignedForReaderMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "listing",
        "buyer",
        "seller",
        "message_count",
        "flagged_count",
        "buyer_unread",
        "seller_unread",
        "is_read_only",
        "is_blocked",
        "updated_at",
    )
    list_filter = (FlaggedFilter, "is_read_only", "is_blocked")
    search_fields = (
        "=id",
        "=listing__id",
        "listing__title",
        "=buyer__id",
        "buyer__nickname",
        "=seller__id",
        "seller__nickname",
    )
    list_select_related = ("listing", "buyer", "seller")
    fields = (
        "listing",
        "buyer",
        "seller",
        "message_count",
        "flagged_count",
        "is_read_only",
        "is_blocked",
        "created_at",
        "updated_at",
        "messages_if_reported",
    )
    readonly_fields = fields

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    @admin.display(description=_("messages"))
    def messages_if_reported(self, obj: Conversation):
        if not conversations.has_report(obj.pk):
            return gettext("Only a reported conversation shows its messages.")
        # The read is recorded by change_view, which renders this.
        rows = Message.objects.filter(conversation=obj).select_related("image").order_by("-id")
        reader_id = getattr(obj, "reader_id", None)
        return format_html_join(
            "\n",
            "<p>#{} {} [{}{}] {}: {}{}</p>",
            (
                (
                    m.pk,
                    m.created_at,
                    m.kind,
                    " " + gettext("flagged") if m.is_flagged else "",
                    m.sender_id,
                    m.text,
                )
                + (image_link(m, reader_id),)
                for m in reversed(list(rows[:200]))
            ),
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        reported = str(object_id).isdigit() and conversations.has_report(int(object_id))
        if response.status_code == 200 and reported:
            conversations.record_staff_read(staff=request.user, conversation_id=int(object_id))
        return response


@admin.register(Message)
class MessageAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Metadata only; the text of a reported conversation's messages is on its page."""

    list_display = ("id", "conversation", "sender", "kind", "is_flagged", "is_hidden", "created_at")
    list_filter = ("is_flagged", "is_hidden", "kind")
    search_fields = ("=conversation__id", "=sender__id")
    list_select_related = ("sender",)
    fields = ("conversation", "sender", "kind", "offer", "is_flagged", "is_hidden", "created_at")
    readonly_fields = fields


@admin.register(Report)
class ReportAdmin(SignedForReaderMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "target_type",
        "reason",
        "reporter",
        "user",
        "listing",
        "status",
        "decided_by",
    )
    list_filter = ("status", "target_type", "reason")
    ordering = ("created_at", "id")  # the queue: oldest first
    list_select_related = ("reporter", "user", "listing", "decided_by")
    search_fields = ("=id", "=user__id", "=listing__id", "=conversation__id")
    fields = (
        "target_type",
        "reason",
        "detail",
        "reporter",
        "user",
        "listing",
        "conversation",
        "reported_content",
        "status",
        "decided_by",
        "decided_at",
        "created_at",
    )
    readonly_fields = fields
    actions = ["dismiss", "take_listing_down", "ban_user"]

    def has_change_permission(self, request, obj=None):
        # Actions need it; every field stays read-only and nothing is saved from the form.
        return request.user.is_active and request.user.is_staff

    def save_model(self, request, obj, form, change):  # pragma: no cover - fields are read-only
        return None

    @admin.display(description=_("reported content"))
    def reported_content(self, obj: Report):
        if obj.message_id is None or obj.conversation_id is None:
            if obj.listing is not None:
                return f"{obj.listing.title}：{obj.listing.description[:500]}"
            return "-"
        thread = Message.objects.filter(conversation_id=obj.conversation_id).select_related("image")
        around = list(thread.filter(pk__lt=obj.message_id).order_by("-id")[:CONTEXT])[::-1] + list(
            thread.filter(pk__gte=obj.message_id).order_by("id")[: CONTEXT + 1]
        )
        reader_id = getattr(obj, "reader_id", None)
        return format_html_join(
            "\n",
            "<p>{}#{} {}: {}{}</p>",
            (
                ("▶ " if m.pk == obj.message_id else "", m.pk, m.sender_id, m.text)
                + (image_link(m, reader_id),)
                for m in around
            ),
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        report = Report.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        if (
            response.status_code == 200
            and report is not None
            and report.message_id
            and report.conversation_id is not None
        ):
            conversations.record_staff_read(
                staff=request.user, conversation_id=report.conversation_id
            )
        return response

    def _decide(self, request, queryset, decision: str) -> None:
        done = 0
        for report in queryset.order_by("created_at", "id"):
            try:
                conversations.decide_report(
                    staff=request.user, report_id=report.pk, decision=decision
                )
                done += 1
            except DomainError as exc:
                self.message_user(
                    request, ": ".join((f"#{report.pk}", exc.message)), messages.WARNING
                )
        if done:
            text = gettext("%(count)s report(s): %(decision)s") % {
                "count": done,
                "decision": gettext(Report.Status(decision).label),
            }
            self.message_user(request, text, messages.SUCCESS)

    @admin.action(description=_("Dismiss"))
    def dismiss(self, request, queryset):
        self._decide(request, queryset, Report.Status.DISMISSED)

    @admin.action(description=_("Take the listing down"))
    def take_listing_down(self, request, queryset):
        self._decide(request, queryset, Report.Status.LISTING_REMOVED)

    @admin.action(description=_("Ban the reported user"))
    def ban_user(self, request, queryset):
        self._decide(request, queryset, Report.Status.USER_BANNED)


@admin.register(ConversationAccess)
class ConversationAccessAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("at", "staff_user", "conversation")
    list_select_related = ("staff_user",)
    search_fields = ("=conversation__id", "=staff_user__id")
