from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

from marketplace.actions import accounts as account_actions
from marketplace.models import Address, ApiToken, User


class AddressInline(admin.TabularInline):
    model = Address
    extra = 0
    fields = ("name", "phone", "province", "city", "district", "detail", "is_default")


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("id", "username", "nickname", "phone", "is_banned", "is_staff", "date_joined")
    list_filter = ("is_banned", "is_staff", "is_superuser", "date_joined")
    search_fields = ("username", "nickname", "openid", "unionid", "phone")
    ordering = ("-id",)
    readonly_fields = (
        "openid",
        "unionid",
        "is_banned",
        "banned_at",
        "ban_reason",
        "rating_count",
        "rating_total",
        "follower_count",
        "on_sale_count",
        "sold_count",
        "social",
        "last_login",
        "date_joined",
    )
    fieldsets = (
        *DjangoUserAdmin.fieldsets,  # type: ignore[misc]  # set on UserAdmin, never None
        (
            "Mini-program",
            {
                "fields": (
                    "openid",
                    "unionid",
                    "nickname",
                    "avatar_url",
                    "phone",
                    "is_banned",
                    "banned_at",
                    "ban_reason",
                    "rating_count",
                    "rating_total",
                    "follower_count",
                    "on_sale_count",
                    "sold_count",
                    "social",
                )
            },
        ),
    )
    inlines = [AddressInline]

    @admin.display(description=_("Favourites and follows"))
    def social(self, obj: User) -> str:
        if obj.pk is None:
            return "-"
        links = [
            ("favourites", "admin:marketplace_favorite_changelist", obj.pk),
            ("follows", "admin:marketplace_follow_changelist", obj.pk),
        ]
        return format_html_join(
            " · ", '<a href="{}?q={}">{}</a>', ((reverse(url), q, label) for label, url, q in links)
        )

    actions = ["ban_users", "unban_users"]

    def has_ban_permission(self, request) -> bool:
        # Its own right (staff groups, migration 0008): change_user would also let the holder
        # edit is_staff, groups and passwords.
        return request.user.has_perm("marketplace.ban_user")

    @admin.action(
        description=_("Ban the selected users (revokes their tokens)"), permissions=["ban"]
    )
    def ban_users(self, request, queryset):
        for user in queryset.filter(is_banned=False, is_superuser=False):
            account_actions.ban_user(user=user, reason=f"banned by {request.user.username}")
            # Who and when: the admin's log (LogEntry), shown in the user's history page.
            self.log_change(request, user, "Banned (tokens revoked, listings hidden).")
        messages.success(request, _("Selected users are banned."))

    @admin.action(description=_("Unban the selected users"), permissions=["ban"])
    def unban_users(self, request, queryset):
        for user in queryset.filter(is_banned=True):
            account_actions.unban_user(user=user)
            self.log_change(request, user, "Unbanned.")
        messages.success(request, _("Selected users are unbanned."))


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "created_at", "expires_at", "revoked_at", "last_used_at")
    list_filter = ("revoked_at", "created_at")
    search_fields = ("user__username", "user__nickname")
    list_select_related = ("user",)
    readonly_fields = ("user", "key_hash", "created_at", "expires_at", "revoked_at", "last_used_at")
    ordering = ("-id",)

    def has_add_permission(self, request):
        return False
