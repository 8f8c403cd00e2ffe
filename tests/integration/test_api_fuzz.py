"""The API against its own /openapi.json, fuzzed: every operation, schema-valid and invalid input.

schemathesis generates requests from the published document and checks each answer: no 5xx, only
documented status codes, schema-valid requests accepted, invalid ones refused, responses matching
their schemas, and 405s naming the accepted methods. It runs through the real app (token validation
against the Entra double, the EWS double behind it) with a fixed seed, so a failure is repeatable.
Outside testers will do the same with more examples; this keeps the contract honest between them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.fakes.stack import Stack, running_stack


@pytest.fixture
def fuzzed(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, ADDIN_RATE_LIMIT="100000/1h") as stack:
        yield stack


def test_every_operation_honours_its_published_contract(fuzzed: Stack) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", fuzzed.app)
    headers = fuzzed.auth()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6

    for operation, mode in itertools.product(operations, (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)):
        takes_input = any((operation.body, operation.path_parameters, operation.query, operation.headers))
        if mode is GenerationMode.NEGATIVE and not takes_input:
            continue  # nothing to get wrong

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=25, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
        def honours_the_contract(case: Any) -> None:
            case.call_and_validate(headers=headers)

        honours_the_contract()
