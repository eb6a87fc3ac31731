import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
if os.environ.get("PYTEST_XDIST_WORKER"):  # make test: -n 2 on 2 cores, so one torch and TF thread per worker
    for _threads in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):  # (read at import;
        os.environ.setdefault(_threads, "1")  # the worker's subprocesses inherit them), not two each
    import signal  # execnet starts workers with SIGINT ignored, which every CLI process a test starts inherits
    signal.signal(signal.SIGINT, signal.default_int_handler)  # (the Ctrl-C tests then wait 60 s and fail)

import ir_check
import pytest
import round_trip
from harness import FLAVOURS


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """pytest-xdist's controller: every worker records into the same directory (tests/round_trip.py)."""
    node.workerinput[round_trip.WORKER_INPUT] = round_trip.share()


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` (whole keras.applications models, 10-55 s each) run first, in their order, so that the
    two xdist workers share them and the quick tests fill the end; the round-trip test runs last, over every model
    the tests before it ran (tests/round_trip.py)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: the order within each kind
    round_trip.arrange(config, items)


def pytest_sessionfinish(session):
    round_trip.worker_done(session.config)


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
