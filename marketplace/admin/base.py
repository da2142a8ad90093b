"""What staff may do with rows the actions own, in one place for every admin module."""


class ReadOnlyMixin:
    """Rows only actions write (history, ledgers, notifications, events): staff look, never
    add, edit or delete."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ActionOnlyMixin:
    """Rows staff change only through the admin actions that record who and why: never added
    or deleted by hand."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
