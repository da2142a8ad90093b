"""Retention: the periodic task deletes events older than the staff-set number of days."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from realtime.models import Event, RealtimeSettings
from realtime.tasks import prune_events
from tests.factories import StaffFactory, UserFactory
from tests.realtime.conftest import emit_now

pytestmark = pytest.mark.django_db


def seqs(user):
    return list(Event.objects.filter(user=user).order_by("seq").values_list("seq", flat=True))


def test_prune_uses_the_staff_setting_and_keeps_numbering():
    user = UserFactory()
    for _ in range(3):
        emit_now([user.pk])
    Event.objects.filter(seq=1).update(created_at=timezone.now() - timedelta(days=10))
    Event.objects.filter(seq=2).update(created_at=timezone.now() - timedelta(days=4))
    assert prune_events.call_local() == 0  # the default keeps 30 days
    RealtimeSettings.objects.update_or_create(pk=1, defaults={"event_retention_days": 7})
    assert prune_events.call_local() == 1
    assert seqs(user) == [2, 3]
    RealtimeSettings.objects.filter(pk=1).update(event_retention_days=3)
    assert prune_events.call_local() == 1
    emit_now([user.pk])
    assert seqs(user) == [3, 4]  # numbers continue after a prune


def test_staff_set_retention_in_the_admin():
    client = Client()
    client.force_login(StaffFactory())
    response = client.post("/admin/realtime/realtimesettings/add/", {"event_retention_days": "14"})
    assert response.status_code == 302, response.content[:500]
    assert RealtimeSettings.load().event_retention_days == 14
    response = client.post(
        "/admin/realtime/realtimesettings/1/change/", {"event_retention_days": "0"}
    )
    assert response.status_code == 200  # re-shown with the validation error
    assert RealtimeSettings.load().event_retention_days == 14
    assert client.get("/admin/realtime/event/").status_code == 200
