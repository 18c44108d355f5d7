import hashlib
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditChain, AuditEvent, AuditNote
from audit.selectors import BreakKind, audit_chain_breaks
from audit.services import Actor, audit_notes_scrub, canonical_json, event_record
from tests.factories import UserFactory


@pytest.fixture
def alice(db):
    return UserFactory(email="alice@example.com")


@pytest.fixture
def bob(db):
    return UserFactory(email="bob@example.com")


@pytest.fixture
def log(alice, bob) -> dict[str, list[AuditEvent]]:
    """Five events for alice, two for bob, two without a subject, interleaved."""
    events: dict[str, list[AuditEvent]] = {"alice": [], "bob": [], "global": []}
    for n in range(5):
        events["alice"].append(
            event_record(actor=Actor.consumer(alice), subject=alice, action="test.step", data={"n": n})
        )
        if n < 2:
            events["bob"].append(
                event_record(actor=Actor.consumer(bob), subject=bob, action="test.step", data={"n": n})
            )
            events["global"].append(event_record(actor=Actor.system("tests"), subject=None, action="test.global"))
    return events


def _verify_fails() -> str:
    """``audit_verify`` exits with status 1; its message."""
    with pytest.raises(CommandError) as error:
        call_command("audit_verify", stdout=StringIO(), stderr=StringIO())
    assert error.value.returncode == 1
    return str(error.value)


def test_intact_chains_verify(log):
    assert list(audit_chain_breaks()) == []
    call_command("audit_verify", stdout=(out := StringIO()))
    assert "audit log intact" in out.getvalue()


def test_each_subject_has_its_own_chain(log, alice, bob):
    assert [(e.chain, e.seq) for e in log["alice"]] == [(f"subject:{alice.pk}", n) for n in range(1, 6)]
    assert [(e.chain, e.seq) for e in log["bob"]] == [(f"subject:{bob.pk}", 1), (f"subject:{bob.pk}", 2)]
    assert [(e.chain, e.seq) for e in log["global"]] == [("global", 1), ("global", 2)]
    assert log["alice"][0].prev_hash == ""
    assert log["alice"][1].prev_hash == log["alice"][0].hash
    assert AuditChain.objects.get(key=f"subject:{alice.pk}").last_hash == log["alice"][-1].hash


def test_edited_row_is_detected_and_named(log, alice):
    edited = log["alice"][2]
    AuditEvent.objects.filter(pk=edited.pk).update(data={"n": 99})

    (found,) = audit_chain_breaks()
    assert (found.chain, found.seq, found.event_id) == (f"subject:{alice.pk}", 3, edited.pk)
    assert "edited" in found.problem
    outcome = _verify_fails()
    assert f"event {edited.pk}" in outcome
    assert "seq 3" in outcome


@pytest.mark.parametrize("column", ["action", "actor_kind", "actor_label", "target_id", "occurred_at"])
def test_any_sealed_column_edit_is_detected(log, column):
    edited = log["bob"][0]
    value = {
        "action": "test.other",
        "actor_kind": "staff",
        "actor_label": "someone else",
        "target_id": "42",
        "occurred_at": edited.occurred_at - timedelta(days=9000),
    }[column]
    AuditEvent.objects.filter(pk=edited.pk).update(**{column: value})

    (found,) = audit_chain_breaks()
    assert found.event_id == edited.pk


def test_edit_with_a_recomputed_plain_hash_is_still_detected(log):
    """The seal is keyed: rewriting a row and its hash without the server's key does not pass."""
    edited = log["global"][1]
    edited.data = {"forged": True}
    edited.hash = hashlib.sha256(canonical_json(edited)).hexdigest()
    edited.save()

    (found,) = audit_chain_breaks()
    assert found.event_id == edited.pk


def test_deleted_row_is_detected_and_named(log, alice):
    AuditEvent.objects.filter(pk=log["alice"][1].pk).delete()

    (found,) = audit_chain_breaks()
    assert (found.chain, found.seq, found.event_id) == (f"subject:{alice.pk}", 2, log["alice"][2].pk)
    assert "deleted" in found.problem
    assert f"event {log['alice'][2].pk}" in _verify_fails()


def test_reordered_pair_is_detected(log, alice):
    second, third = log["alice"][1], log["alice"][2]
    AuditEvent.objects.filter(pk=second.pk).update(seq=1000)
    AuditEvent.objects.filter(pk=third.pk).update(seq=2)
    AuditEvent.objects.filter(pk=second.pk).update(seq=3)

    (found,) = audit_chain_breaks()
    assert (found.chain, found.seq, found.event_id) == (f"subject:{alice.pk}", 2, third.pk)
    assert "reordered" in found.problem


def test_truncated_tail_is_detected(log, bob):
    AuditEvent.objects.filter(pk=log["bob"][-1].pk).delete()

    (found,) = audit_chain_breaks()
    assert (found.chain, found.seq, found.event_id) == (f"subject:{bob.pk}", 2, None)
    assert "truncated" in found.problem
    assert "missing event" in _verify_fails()


def test_chain_deleted_entirely_is_detected(log, bob):
    AuditEvent.objects.filter(chain=f"subject:{bob.pk}").delete()

    (found,) = audit_chain_breaks()
    assert found.chain == f"subject:{bob.pk}"
    assert "truncated" in found.problem


def test_deleted_chain_head_is_detected(log, bob):
    AuditChain.objects.filter(key=f"subject:{bob.pk}").delete()

    (found,) = audit_chain_breaks()
    assert found.chain == f"subject:{bob.pk}"
    assert "head" in found.problem


def test_damage_in_one_chain_leaves_the_others_verifiable(log, alice, bob):
    AuditEvent.objects.filter(pk=log["alice"][0].pk).update(action="test.other")

    assert [b.chain for b in audit_chain_breaks()] == [f"subject:{alice.pk}"]
    assert list(audit_chain_breaks(f"subject:{bob.pk}")) == []
    assert list(audit_chain_breaks("global")) == []
    call_command("audit_verify", "--chain", f"subject:{bob.pk}", stdout=StringIO())
    with pytest.raises(CommandError, match=f"subject:{alice.pk}"):
        call_command("audit_verify", "--chain", f"subject:{alice.pk}", stderr=StringIO())


def test_every_damaged_chain_is_reported_with_its_first_break(log, alice, bob):
    AuditEvent.objects.filter(pk__in=[log["alice"][3].pk, log["alice"][1].pk]).update(action="x")
    AuditEvent.objects.filter(pk=log["bob"][1].pk).update(action="x")

    breaks = {b.chain: b.seq for b in audit_chain_breaks()}
    assert breaks == {f"subject:{alice.pk}": 2, f"subject:{bob.pk}": 2}


def test_a_different_server_key_fails_every_row(log, settings):
    settings.AUDIT_HMAC_KEY = "not-the-key-the-log-was-sealed-with"
    assert {b.seq for b in audit_chain_breaks()} == {1}
    assert len(list(audit_chain_breaks())) == 3


def test_deleting_the_subjects_account_keeps_their_chain_verifiable(log, alice):
    chain = f"subject:{alice.pk}"
    alice.delete()

    assert AuditEvent.objects.filter(chain=chain, subject__isnull=True).count() == 5
    assert list(audit_chain_breaks()) == []


# Free text beside the sealed rows ------------------------------------------------------------


@pytest.fixture
def noted(log, alice) -> AuditEvent:
    return event_record(
        actor=Actor.system("tests"), subject=alice, action="test.noted", data={"n": 5}, note="Alice's words nt9k"
    )


def test_free_text_is_kept_beside_the_sealed_row_not_in_it(noted):
    assert "nt9k" not in canonical_json(noted).decode()
    assert AuditNote.objects.get(event=noted).text == "Alice's words nt9k"
    assert list(audit_chain_breaks()) == []


def test_scrubbing_the_subjects_notes_keeps_every_chain_verifiable(noted, alice, bob):
    bobs = event_record(actor=Actor.system("tests"), subject=bob, action="test.noted", note="Bob's words")

    assert audit_notes_scrub(subject=alice) == 1
    note = AuditNote.objects.get(event=noted)
    assert (note.text, note.salt, note.scrubbed_at is not None) == ("", "", True)
    assert AuditNote.objects.get(event=bobs).text == "Bob's words", "other subjects' notes stay"
    assert list(audit_chain_breaks()) == []
    call_command("audit_verify", stdout=(out := StringIO()))
    assert "audit log intact" in out.getvalue()


def test_edited_note_is_detected(noted, alice):
    AuditNote.objects.filter(event=noted).update(text="Someone else's words")

    (found,) = audit_chain_breaks()
    assert (found.chain, found.event_id, found.kind) == (f"subject:{alice.pk}", noted.pk, BreakKind.NOTE)
    assert "edited" in _verify_fails()


def test_deleted_note_is_detected(noted):
    AuditNote.objects.filter(event=noted).delete()

    (found,) = audit_chain_breaks()
    assert (found.event_id, found.kind) == (noted.pk, BreakKind.NOTE)
    assert "missing" in found.problem


def test_note_added_to_an_event_sealed_without_one_is_detected(log):
    AuditNote.objects.create(event=log["alice"][1], text="Invented later", salt="0" * 32)

    (found,) = audit_chain_breaks()
    assert (found.event_id, found.kind) == (log["alice"][1].pk, BreakKind.NOTE)
