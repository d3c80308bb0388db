"""docker-compose.yml is valid (checked by docker-compose itself) and has the whole stack."""
import os
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]


def compose(*args, password="pw-from-env"):
    env = {k: v for k, v in os.environ.items() if k != "LAKE_SERVE_PASSWORD"}
    if password is not None:
        env["LAKE_SERVE_PASSWORD"] = password
    return subprocess.run(["docker-compose", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env)


def test_compose_file_is_valid_and_complete():
    out = compose("config")
    assert out.returncode == 0, out.stderr
    config = out.stdout
    services = compose("config", "--services").stdout.split()
    assert set(services) == {"kafka", "topic", "ingest", "producer", "schedule", "serve"}
    assert "apache/kafka" in config
    assert "--partitions" in config and "user_events" in config
    # The host's ./data is the lake inside the containers.
    assert f"{ROOT}/data:/lake/data" in config
    # Flight SQL is published, with the password from the environment.
    assert ("published: 50051" in config or "50051:50051" in config) and "pw-from-env" in config
    # The long-running services are health-checked on their /readyz, metrics on host loopback.
    assert config.count("/readyz") == 3, config
    # So is serve's status page, which shows lag from the broker (ingest, producer and serve
    # name it).
    assert re.search(r"--http-addr\W+0\.0\.0\.0:8080", config), config
    assert len(re.findall(r"--brokers\W+kafka:9092", config)) == 3, config
    for port in (9464, 9465, 9466, 8080):
        assert f"0.0.0.0:{port}" in config, port
        # Short or long port syntax, depending on the compose version.
        assert (f"127.0.0.1:{port}:{port}" in config
                or (f"target: {port}" in config and "host_ip: 127.0.0.1" in config)), port


def test_compose_refuses_to_publish_flight_sql_without_a_password():
    out = compose("config", password=None)
    assert out.returncode != 0
    assert "set LAKE_SERVE_PASSWORD" in out.stderr


def test_the_s3_override_puts_the_lake_on_a_seaweedfs_service():
    files = ["-f", "docker-compose.yml", "-f", "docker-compose.s3.yml"]
    out = compose(*files, "config")
    assert out.returncode == 0, out.stderr
    config = out.stdout
    services = compose(*files, "config", "--services").stdout.split()
    assert set(services) == {"kafka", "topic", "ingest", "producer", "schedule", "serve", "seaweedfs"}
    # ingest, schedule and serve use the bucket, through the S3 service inside the network.
    assert config.count("LAKE_DIR: s3://lake/lake") == 3, config
    assert config.count("AWS_ENDPOINT_URL: http://seaweedfs:8333") == 3, config
    assert "chrislusf/seaweedfs" in config
    # The S3 server publishes no port on the host.
    seaweedfs = config.split("\n  seaweedfs:\n")[1].split("\n  serve:")[0]
    assert "ports" not in seaweedfs and "/status" in seaweedfs, seaweedfs
