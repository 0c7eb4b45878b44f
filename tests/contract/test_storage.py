"""The object-store options each engine gets: none on AWS's defaults, all of them for a local store."""

from __future__ import annotations

from pathlib import Path

import pytest

from lambda_contract.settings import Settings, SettingsError
from lambda_contract.storage import delta_rs_options, flink_s3, hadoop_s3a, pyarrow_s3

pytestmark = pytest.mark.unit

ENDPOINT = "http://127.0.0.1:18333"


@pytest.fixture
def credentials(tmp_path: Path) -> str:
    path = tmp_path / "objectstore.env"
    path.write_text("# made by the objectstore\nAWS_ACCESS_KEY_ID=AKLOCAL\nAWS_SECRET_ACCESS_KEY=s3cr=t\n")
    return str(path)


def test_nothing_is_added_without_an_endpoint_or_credentials() -> None:
    settings = Settings.from_env({})
    assert delta_rs_options(settings) == {}
    assert hadoop_s3a(settings) == {}
    assert flink_s3(settings) == {}
    assert pyarrow_s3(settings) == {}


def test_a_local_store_gets_endpoint_path_style_http_and_keys(credentials: str) -> None:
    settings = Settings.from_env({"LAMBDA_S3_ENDPOINT": ENDPOINT, "LAMBDA_S3_CREDENTIALS_FILE": credentials})
    delta = delta_rs_options(settings)
    assert delta["AWS_ENDPOINT_URL"] == ENDPOINT
    assert delta["AWS_ALLOW_HTTP"] == "true" and delta["AWS_FORCE_PATH_STYLE"] == "true"
    assert delta["AWS_CONDITIONAL_PUT"] == "etag"  # safe commits without a DynamoDB lock
    assert (delta["AWS_ACCESS_KEY_ID"], delta["AWS_SECRET_ACCESS_KEY"]) == ("AKLOCAL", "s3cr=t")
    assert delta["AWS_REGION"]

    s3a = hadoop_s3a(settings)
    assert s3a["fs.s3a.endpoint"] == ENDPOINT
    assert s3a["fs.s3a.path.style.access"] == "true"
    assert s3a["fs.s3a.connection.ssl.enabled"] == "false"
    assert (s3a["fs.s3a.access.key"], s3a["fs.s3a.secret.key"]) == ("AKLOCAL", "s3cr=t")
    assert s3a["fs.s3a.aws.credentials.provider"].endswith("SimpleAWSCredentialsProvider")

    flink = flink_s3(settings)
    assert flink["s3.endpoint"] == ENDPOINT
    assert flink["s3.path.style.access"] == "true"
    assert (flink["s3.access.key"], flink["s3.secret.key"]) == ("AKLOCAL", "s3cr=t")
    assert all(key.startswith("s3.") for key in flink)

    arrow = pyarrow_s3(settings)
    assert (arrow["endpoint_override"], arrow["scheme"]) == (ENDPOINT.split("://")[1], "http")
    assert (arrow["access_key"], arrow["secret_key"]) == ("AKLOCAL", "s3cr=t")
    assert arrow["region"]


def test_an_https_endpoint_keeps_tls() -> None:
    settings = Settings.from_env({"LAMBDA_S3_ENDPOINT": "https://s3.example.internal"})
    assert delta_rs_options(settings)["AWS_ALLOW_HTTP"] == "false"
    assert hadoop_s3a(settings)["fs.s3a.connection.ssl.enabled"] == "true"
    # No credentials file: the clients' default chains find the keys.
    assert "AWS_ACCESS_KEY_ID" not in delta_rs_options(settings)
    assert "fs.s3a.access.key" not in hadoop_s3a(settings)
    assert pyarrow_s3(settings)["scheme"] == "https" and "access_key" not in pyarrow_s3(settings)


def test_credentials_alone_keep_aws_endpoints(credentials: str) -> None:
    settings = Settings.from_env({"LAMBDA_S3_CREDENTIALS_FILE": credentials})
    assert delta_rs_options(settings) == {"AWS_ACCESS_KEY_ID": "AKLOCAL", "AWS_SECRET_ACCESS_KEY": "s3cr=t"}
    assert "fs.s3a.endpoint" not in hadoop_s3a(settings)
    assert "s3.endpoint" not in flink_s3(settings)
    assert pyarrow_s3(settings) == {"access_key": "AKLOCAL", "secret_key": "s3cr=t"}


def test_a_missing_credentials_file_is_a_clear_error(tmp_path: Path) -> None:
    settings = Settings.from_env({"LAMBDA_S3_CREDENTIALS_FILE": str(tmp_path / "absent.env")})
    with pytest.raises(SettingsError, match="LAMBDA_S3_CREDENTIALS_FILE"):
        delta_rs_options(settings)
