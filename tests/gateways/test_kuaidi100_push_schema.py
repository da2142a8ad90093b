"""A signed Kuaidi100 push is validated as a whole against its schema: what does not fit is
refused (PushRejected, answered with Kuaidi100's failure reply), never a 500 (issue 20, finding 9).
The salt signs the push, but a leaked salt or a confused upstream must not reach the database."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.gateways import kuaidi100
from marketplace.gateways.kuaidi100 import Push, PushRejected

SALT = "per-order-salt-3f9a"


def _event(**overrides) -> dict:
    return {
        "time": "2026-11-25 10:00:00",
        "ftime": "2026-11-25 10:00:00",
        "context": "已签收",
        "location": "上海",
        **overrides,
    }


def _payload(*, event: dict | None = None, **overrides) -> dict:
    return {
        "status": "polling",
        "message": "",
        "lastResult": {
            "state": "3",
            "ischeck": "1",
            "com": "yuantong",
            "nu": "YT7712345678901",
            "data": [event or _event()],
        },
        **overrides,
    }


def _signed(param: str) -> dict:
    return {"param": param, "sign": kuaidi100.push_sign(param=param, salt=SALT)}


def _parse(payload) -> Push:
    param = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return kuaidi100.parse_push(form=_signed(param), salt=SALT)


def test_a_well_formed_push_still_parses():
    push = _parse(_payload(autoCheck="1", comNew="zhongtong"))
    assert push.state == 3 and push.is_signed and push.new_carrier == "zhongtong"
    assert [event.location for event in push.events] == ["上海"]


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(_payload(event=_event(context="签\x00收")), id="nul-in-event-text"),
        pytest.param(_payload(event=_event(location="上\x00海")), id="nul-in-location"),
        pytest.param(_payload(message="a\x00b"), id="nul-in-message"),
        pytest.param(
            _payload(event=_event(time="0001-01-01 00:00:00", ftime="0001-01-01 00:00:00")),
            id="year-0001",
        ),
        pytest.param(
            _payload(event=_event(time="9999-12-31 23:59:59", ftime="9999-12-31 23:59:59")),
            id="year-9999",
        ),
        pytest.param(_payload(autoCheck="1", comNew="c" * 31), id="comNew-over-30"),
        pytest.param(_payload(autoCheck="1", comNew="evilcarrier"), id="comNew-not-a-carrier"),
        pytest.param("[" * 100_000 + "]" * 100_000, id="deeply-nested-param"),
        pytest.param(
            {**_payload(), "extra": json.loads("[" * 500 + "]" * 500)}, id="deeply-nested-field"
        ),
        pytest.param(_payload(event=_event(context=["not", "text"])), id="event-text-not-text"),
        pytest.param(_payload(event=_event(context="x" * 5000)), id="event-text-too-long"),
        pytest.param({**_payload(), "lastResult": {"state": "3", "nu": "N" * 200}}, id="long-nu"),
        pytest.param({**_payload(), "lastResult": {"state": 10**30}}, id="huge-state"),
        pytest.param({**_payload(), "lastResult": {"state": True}}, id="boolean-state"),
    ],
)
def test_a_signed_push_that_does_not_fit_the_schema_is_refused(payload):
    with pytest.raises(PushRejected) as caught:
        _parse(payload)
    body = caught.value.as_body()
    # Kuaidi100's own failure reply (it re-sends until it gets its ack), in the API error body.
    assert body["result"] is False and body["returnCode"] != "200"
    assert body["code"] == "invalid_push" and body["message"]


# --- properties ----------------------------------------------------------------------------

_text = st.text(max_size=40)
_scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | _text
_json = st.recursive(
    _scalar,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=20,
)
_times = st.one_of(
    st.datetimes().map(lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S")),
    _text,
    _scalar,
)
_events = st.fixed_dictionaries(
    {},
    optional={
        "time": _times,
        "ftime": _times,
        "context": _text | _scalar,
        "location": _text | _scalar,
        "areaName": _scalar,
    },
)
_last_results = st.fixed_dictionaries(
    {},
    optional={
        "state": st.sampled_from(["0", "3", "14", "99", "100", "-1", ""]) | _scalar,
        "ischeck": st.sampled_from(["0", "1"]) | _scalar,
        "com": st.sampled_from(sorted(kuaidi100.CARRIERS)) | _text,
        "nu": _text,
        "data": st.lists(_events, max_size=4) | _json,
    },
)
_payloads = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(sorted(kuaidi100.PUSH_STATUSES)) | _text,
        "message": _text | _scalar,
        "autoCheck": st.sampled_from(["0", "1", 1]) | _scalar,
        "comNew": st.sampled_from(sorted(kuaidi100.CARRIERS)) | _text | _scalar,
        "lastResult": _last_results | _json,
    },
)


def _parsed_or_refused(form: dict) -> Push | None:
    try:
        push = kuaidi100.parse_push(form=form, salt=SALT)
    except PushRejected:
        return None
    assert isinstance(push, Push)
    return push


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=_payloads)
def test_any_signed_push_is_parsed_into_storable_values_or_refused(payload):
    push = _parsed_or_refused(_signed(json.dumps(payload, ensure_ascii=False)))
    if push is None:
        return
    assert push.status in kuaidi100.PUSH_STATUSES
    assert push.state is None or 0 <= push.state <= 99
    assert not push.new_carrier or push.new_carrier in kuaidi100.CARRIERS
    assert len(push.tracking_no) <= 32 and len(push.carrier) <= 30
    for event in push.events:
        assert event.time.tzinfo is not None and 2000 <= event.time.year <= 2100
        assert "\x00" not in event.text + event.location


@settings(max_examples=200, deadline=None)
@given(param=st.text(max_size=200) | _json.map(json.dumps), sign=st.text(max_size=40))
def test_any_form_is_parsed_or_refused(param, sign):
    _parsed_or_refused({"param": param, "sign": sign})
    _parsed_or_refused(_signed(param))
