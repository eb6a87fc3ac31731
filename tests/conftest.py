import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import ir_check
import pytest
import round_trip
from harness import FLAVOURS


def pytest_collection_modifyitems(config, items):
    """The round-trip test runs last, over every model the tests before it ran (tests/round_trip.py)."""
    round_trip.arrange(items)


def pytest_unconfigure(config):
    round_trip.cleanup()


@pytest.fixture(params=FLAVOURS)
def flavour(request):
    """Each layer test runs against Keras 3 and tf_keras (Keras 2)."""
    return request.param


@pytest.fixture(autouse=True, scope="session")
def ir_round_trip():
    """Every graph a test reads through ``open_model`` survives ``to_json`` → JSON → ``from_json`` unchanged
    (tests/ir_check.py, issue #21); no conversion, so it costs little."""
    with ir_check.checking_reads():
        yield
