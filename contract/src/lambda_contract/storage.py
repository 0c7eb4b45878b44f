"""How every engine reaches the object store: one place for the S3 options of each client.

The Delta tables and the checkpoints live on s3:// or s3a:// URLs in cluster mode (SeaweedFS's S3
gateway at LAMBDA_S3_ENDPOINT, keys in LAMBDA_S3_CREDENTIALS_FILE) and may in production (AWS, keys
from the pod's web identity). Three clients read them, each with its own spelling of the same
facts: delta-rs (the serving layer, the test kit), Hadoop's s3a (Spark), Flink's S3 file
system plugin, and pyarrow's S3 file system (listing and deleting checkpoints and test data). Each function here returns nothing extra when neither setting is given, so a
deployment on AWS keeps each client's default endpoint and credential chain.
"""

from __future__ import annotations

from typing import Final

from lambda_contract.settings import Settings

# An S3-compatible store on its own endpoint has no regions; the SDKs still sign with one.
LOCAL_REGION: Final = "us-east-1"


def _custom_endpoint(settings: Settings) -> tuple[str, bool] | None:
    """(endpoint, is plain http) when LAMBDA_S3_ENDPOINT names a store other than AWS."""
    endpoint = settings.s3_endpoint.strip()
    if not endpoint:
        return None
    return endpoint, endpoint.lower().startswith("http://")


def delta_rs_options(settings: Settings) -> dict[str, str]:
    """deltalake's `storage_options` (DeltaTable, write_deltalake) for the object store.

    A store of our own has no DynamoDB locking provider. delta-rs then commits each _delta_log
    entry with a conditional put (If-None-Match: *, its default for S3 since 0.23, named here so
    that it stays so), which SeaweedFS honours (HTTP 412), so two writers cannot both commit the
    same version. Local paths ignore these options.
    """
    options: dict[str, str] = {}
    custom = _custom_endpoint(settings)
    if custom is not None:
        endpoint, plain_http = custom
        options |= {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": LOCAL_REGION,
            "AWS_FORCE_PATH_STYLE": "true",  # bucket in the path: no per-bucket DNS names here
            "AWS_ALLOW_HTTP": "true" if plain_http else "false",
            "AWS_CONDITIONAL_PUT": "etag",
        }
    credentials = settings.s3_credentials()
    if credentials is not None:
        options["AWS_ACCESS_KEY_ID"], options["AWS_SECRET_ACCESS_KEY"] = credentials
    return options


def hadoop_s3a(settings: Settings) -> dict[str, str]:
    """Hadoop's fs.s3a.* keys (Spark: each as spark.hadoop.<key>).

    Delta's default LogStore for s3a (S3SingleDriverLogStore) is safe with one writing driver,
    which the batch layer's writer lock guarantees; nothing else is needed for Delta here.
    """
    options: dict[str, str] = {}
    custom = _custom_endpoint(settings)
    if custom is not None:
        endpoint, plain_http = custom
        options |= {
            "fs.s3a.endpoint": endpoint,
            "fs.s3a.endpoint.region": LOCAL_REGION,
            "fs.s3a.path.style.access": "true",
            "fs.s3a.connection.ssl.enabled": "false" if plain_http else "true",
        }
    credentials = settings.s3_credentials()
    if credentials is not None:
        options |= {
            "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
            "fs.s3a.access.key": credentials[0],
            "fs.s3a.secret.key": credentials[1],
        }
    return options


def pyarrow_s3(settings: Settings) -> dict[str, str]:
    """pyarrow.fs.S3FileSystem's keyword arguments (the speed layer's checkpoint listing, tests)."""
    options: dict[str, str] = {}
    custom = _custom_endpoint(settings)
    if custom is not None:
        endpoint, plain_http = custom
        options |= {
            "endpoint_override": endpoint.split("://", 1)[-1],
            "scheme": "http" if plain_http else "https",
            "region": LOCAL_REGION,
        }
    credentials = settings.s3_credentials()
    if credentials is not None:
        options["access_key"], options["secret_key"] = credentials
    return options


def flink_s3(settings: Settings) -> dict[str, str]:
    """Flink's s3.* configuration keys (flink-s3-fs-hadoop maps each to its fs.s3a.* key)."""
    return {"s3." + key.removeprefix("fs.s3a."): value for key, value in hadoop_s3a(settings).items()}
