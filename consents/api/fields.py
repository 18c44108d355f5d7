"""Serializer fields shared by the partner API's input serializers."""

from typing import Any

from rest_framework import serializers

IDENTIFIER = r"^[A-Za-z0-9_-]+$"
TEXT = r"^[^\x00]*$"


class StrictRegexField(serializers.RegexField):
    """A string field that refuses numbers and booleans instead of quietly turning them into text.

    Its pattern is published in the schema, so what the schema allows is what the API accepts.
    """

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
