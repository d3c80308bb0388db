"""docker-compose.yml is valid (checked by docker-compose itself) and has the whole stack."""
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]


def compose(*args):
    out = subprocess.run(["docker-compose", *args], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_compose_file_is_valid_and_complete():
    config = compose("config")
    assert set(compose("config", "--services").split()) == {"kafka", "topic", "ingest", "producer", "schedule"}
    assert "apache/kafka" in config
    assert "--partitions" in config and "user_events" in config
    # The host's ./data is the lake inside the containers.
    assert f"{ROOT}/data:/lake/data" in config
