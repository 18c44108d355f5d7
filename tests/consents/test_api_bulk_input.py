"""The bulk check reads a well-formed request without the serializer (``bulk_pairs_plain``).

That shortcut must never accept what the serializer refuses, nor read a pair differently: any
request it takes, the serializer takes too, with the same pairs in the same order.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consents.api.views import BULK_IDENTIFIER_MAX, BulkConsentCheckApi, bulk_pairs_plain


def _serializer_pairs(data):
    serializer = BulkConsentCheckApi.InputSerializer(data=data)
    if not serializer.is_valid():
        return None
    return [(item["subject_id"], item["purpose"]) for item in serializer.validated_data["items"]]


@pytest.mark.parametrize(
    "items",
    [
        [],
        [{"subject_id": "sub_1", "purpose": "offers"}],
        [{"subject_id": "sub_1", "purpose": "offers", "extra": 1}, {"purpose": "b-2", "subject_id": "A_z-9"}],
        [{"subject_id": "s" * BULK_IDENTIFIER_MAX, "purpose": "p" * BULK_IDENTIFIER_MAX}],
    ],
)
def test_well_formed_requests_take_the_shortcut_and_read_as_the_serializer_reads_them(items):
    data = {"items": items}

    assert bulk_pairs_plain(data) is not None
    assert bulk_pairs_plain(data) == _serializer_pairs(data)


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {},
        {"items": None},
        {"items": "sub_1"},
        {"items": [["sub_1", "offers"]]},
        {"items": [{"subject_id": "sub_1"}]},
        {"items": [{"subject_id": 1, "purpose": "offers"}]},
        {"items": [{"subject_id": True, "purpose": "offers"}]},
        {"items": [{"subject_id": "sub_1\n", "purpose": "offers"}]},  # the serializer strips it: its own reading
        {"items": [{"subject_id": " sub_1", "purpose": "offers"}]},
        {"items": [{"subject_id": "", "purpose": "offers"}]},
        {"items": [{"subject_id": "s" * (BULK_IDENTIFIER_MAX + 1), "purpose": "offers"}]},
        {"items": [{"subject_id": "sub_1", "purpose": "offers/../x"}]},
        {"items": [{"subject_id": "sub_\u0661", "purpose": "offers"}]},  # a non-ASCII digit
    ],
)
def test_anything_else_is_left_to_the_serializer(data):
    assert bulk_pairs_plain(data) is None


_values = st.one_of(
    st.text(alphabet=st.sampled_from("aZ09_-. \n\t/é\u0661\x00"), max_size=BULK_IDENTIFIER_MAX + 2),
    st.text(max_size=5),
    st.integers(),
    st.booleans(),
    st.none(),
    st.lists(st.text(max_size=3), max_size=2),
)
_items = st.one_of(
    st.fixed_dictionaries({"subject_id": _values, "purpose": _values}),
    st.dictionaries(st.sampled_from(["subject_id", "purpose", "other"]), _values),
    _values,
)


@settings(max_examples=400, deadline=None)
@given(items=st.lists(_items, max_size=4))
def test_the_shortcut_never_accepts_what_the_serializer_refuses_or_reads_it_differently(items):
    data = {"items": items}
    plain = bulk_pairs_plain(data)

    if plain is not None:
        assert plain == _serializer_pairs(data)
