"""Named events (plugin/events.py): declared names and fields, listeners in turn,
and a listener that raises never breaks the publisher or the listeners after it."""

import logging

import pytest

from plugin.events import Events, UnknownEvent

DECLARED = {"study.removed": ("study_uid",), "order.created": ("order_id", "accession_number")}


def test_every_listener_hears_each_publication_in_the_order_they_subscribed():
    events, heard = Events(DECLARED), []
    events.subscribe("study.removed", lambda **payload: heard.append(("first", payload)))
    events.subscribe("study.removed", lambda **payload: heard.append(("second", payload)))
    assert events.publish("study.removed", study_uid="1.2.3", extra="kept") == 2
    assert heard == [
        ("first", {"study_uid": "1.2.3", "extra": "kept"}),
        ("second", {"study_uid": "1.2.3", "extra": "kept"}),
    ]
    assert events.publish("order.created", order_id=1, accession_number="A") == 0  # nobody listens: fine


def test_a_listener_that_raises_is_logged_and_the_others_still_run(caplog):
    events, heard = Events(DECLARED), []

    def broken(**payload):
        raise RuntimeError("listener bug")

    events.subscribe("study.removed", broken)
    events.subscribe("study.removed", lambda **payload: heard.append(payload["study_uid"]))
    with caplog.at_level(logging.ERROR, logger="plugin.events"):
        assert events.publish("study.removed", study_uid="1.2.3") == 1
    assert heard == ["1.2.3"]
    assert "event=event_listener_failed name=study.removed" in caplog.text


def test_names_and_fields_are_checked_at_once():
    events = Events(DECLARED)
    with pytest.raises(UnknownEvent):
        events.subscribe("study.remove", lambda **payload: None)  # a typo fails here, not never
    with pytest.raises(UnknownEvent):
        events.publish("report.signed", study_uid="1")
    with pytest.raises(ValueError, match="accession_number"):
        events.publish("order.created", order_id=1)


def test_a_listener_may_subscribe_another_while_an_event_is_published():
    events, heard = Events(DECLARED), []

    def late(**payload):
        heard.append("late")

    def subscribing(**payload):
        heard.append("subscribing")
        events.subscribe("study.removed", late)

    events.subscribe("study.removed", subscribing)
    events.publish("study.removed", study_uid="1")
    assert heard == ["subscribing"]  # the new listener hears the next publication
    events.publish("study.removed", study_uid="2")
    assert heard == ["subscribing", "subscribing", "late"]
