"""Shared fixtures: the `lake` binary and the Kafka broker started by scripts/test.sh."""
import os
import subprocess
import uuid

import pytest


@pytest.fixture(scope="session")
def lake_bin():
    path = os.environ.get("LAKE_BIN")
    assert path and os.path.exists(path), "LAKE_BIN must point at the built lake binary (scripts/test.sh sets it)"
    return path


@pytest.fixture(scope="session")
def brokers():
    b = os.environ.get("LAKE_TEST_BROKERS")
    assert b, "LAKE_TEST_BROKERS must name the test broker (scripts/test.sh starts one)"
    return b


@pytest.fixture
def topic():
    return f"py_{uuid.uuid4().hex}"


def run(*args, **kw):
    out = subprocess.run(args, capture_output=True, text=True, **kw)
    assert out.returncode == 0, f"{args} failed ({out.returncode}):\n{out.stderr}"
    return out


@pytest.fixture(scope="session")
def flight_lake(tmp_path_factory, lake_bin, brokers):
    """A small lake shared by the Flight SQL client tests (see flight_serve.py)."""
    import flight_serve
    return flight_serve.make_lake(lake_bin, brokers, tmp_path_factory.mktemp("flight") / "lake")


@pytest.fixture(scope="session")
def flight_server(flight_lake, lake_bin):
    """`lake serve` over flight_lake with a user and password, on a free port; killed at the end."""
    import flight_serve
    server = flight_serve.start_server(lake_bin, flight_lake)
    yield server
    server.stop()
