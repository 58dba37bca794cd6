"""Events are written in the background, in HAMi's shape, and dropped rather than queued forever."""

from __future__ import annotations

from hami_core.scheduler.recording import EventRecorder
from hami_core.scheduler.recording import ObjectRef
from hami_core.testing.fake_kube import FakeKube
from tests.scheduler.fakes import NOW


def test_an_event_is_written_about_the_object_with_the_scheduler_as_source() -> None:
    kube = FakeKube()
    recorder = EventRecorder(kube, clock=lambda: NOW)
    recorder.start()
    recorder.record(ObjectRef("Pod", "p", "default", "u"), "Warning", "FilteringFailed", "x" * 2000)
    recorder.stop()
    (event,) = kube.list_events("default")["items"]
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "p",
        "uid": "u",
        "namespace": "default",
    }
    assert (event["type"], event["reason"], event["source"]) == (
        "Warning",
        "FilteringFailed",
        {"component": "hami-scheduler"},
    )
    assert len(event["message"]) == 1024
    assert event["message"].endswith(" ...")
    assert event["firstTimestamp"] == "2026-08-01T06:00:00Z"


def test_a_node_event_goes_to_the_default_namespace() -> None:
    kube = FakeKube()
    recorder = EventRecorder(kube)
    recorder.start()
    recorder.record(ObjectRef("Node", "n"), "Warning", "InvalidDeviceRegistration", "bad")
    recorder.stop()
    (event,) = kube.list_events("default")["items"]
    assert event["involvedObject"]["kind"] == "Node"
    assert "namespace" not in event["involvedObject"]


def test_events_beyond_the_queue_are_dropped_and_counted() -> None:
    recorder = EventRecorder(FakeKube(), capacity=2)
    for _ in range(5):
        recorder.record(ObjectRef("Pod", "p", "default"), "Normal", "FilteringSucceed", "ok")
    assert recorder.dropped == 3
