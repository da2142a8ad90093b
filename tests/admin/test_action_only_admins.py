"""The admins of rows that change only through actions (marketplace/admin/base.py
ActionOnlyMixin): the change form never saves the row, and nobody adds or deletes one."""

from unittest import mock

import pytest
from django.contrib import admin
from django.test import RequestFactory

from marketplace.admin.base import ActionOnlyMixin
from marketplace.models import Listing
from marketplace.models.fulfilment import Dispute
from marketplace.models.orders import Order, Refund
from marketplace.models.wallet import Withdrawal
from tests.factories import UserFactory

ACTION_ONLY = [Listing, Order, Refund, Dispute, Withdrawal]


@pytest.mark.django_db
@pytest.mark.parametrize("model", ACTION_ONLY, ids=lambda model: model.__name__)
def test_the_change_form_never_saves_and_rows_are_never_added_or_deleted(model):
    model_admin = admin.site.get_model_admin(model)
    assert isinstance(model_admin, ActionOnlyMixin)
    request = RequestFactory().post("/")
    request.user = UserFactory(is_staff=True, is_superuser=True)
    row = mock.Mock(spec=model)
    model_admin.save_model(request, row, form=None, change=True)
    row.save.assert_not_called()
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_delete_permission(request, row)
