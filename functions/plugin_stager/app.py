"""Custom::DatagenPlugin — stage the pinned MSK datagen plugin jar in the stack's bucket.

Create/Update: download SourceUrl, check its SHA-256 against Sha256, put it at s3://Bucket/Key
and return the S3 location AWS::KafkaConnect::CustomPlugin needs. With UserS3Uri set, nothing is
downloaded: the user's object is returned as is (for accounts without internet egress).
Delete: remove every version of the object this resource staged; never the user's object.
Properties and messages: functions/README.md.
"""

import base64
import hashlib
import logging
import re

from flu_monitor import custom_resource as cr

log = logging.getLogger(__name__)
helper = cr.make_helper()
clients = cr.Clients()

with helper.initialising():
    import urllib.error
    import urllib.request

DOWNLOAD_TIMEOUT_S = 60
MAX_PLUGIN_BYTES = 200 * 1024 * 1024
DEFAULT_PARAMETER_NAME = "PluginS3Uri"


class PluginError(RuntimeError):
    """The plugin cannot be staged; the message says why, cause last."""


def handler(event, context):
    helper(event, context)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    match = re.fullmatch(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(.+)", uri)
    if not match:
        raise cr.PropertyError(
            f"property UserS3Uri must look like s3://bucket/key.jar, not {uri!r}"
        )
    return match.group(1), match.group(2)


def download(url: str, parameter: str) -> bytes:
    """The body at url (http/https only); PluginError naming the fallback parameter on failure."""
    if not url.startswith(("https://", "http://")):
        raise cr.PropertyError(f"property SourceUrl must be an http(s) URL, not {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:  # noqa: S310
            body = response.read(MAX_PLUGIN_BYTES + 1)
    except urllib.error.HTTPError as exc:
        cause = f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError) as exc:  # refused, DNS, timeout: typically no egress
        cause = str(getattr(exc, "reason", exc))
    else:
        if len(body) > MAX_PLUGIN_BYTES:
            raise PluginError(f"plugin at {url} is larger than {MAX_PLUGIN_BYTES} bytes")
        return body
    raise PluginError(
        f"Plugin download failed; without internet egress set parameter {parameter} to an "
        f"s3:// copy of the jar. GET {url}: {cause}"
    )


@helper.create
@helper.update
def stage(event, _context):
    properties = cr.props(event)
    part = cr.partition(event)
    user_uri = cr.optional(properties, "UserS3Uri")
    if user_uri:
        bucket, key = parse_s3_uri(user_uri)
        helper.Data.update(BucketArn=f"arn:{part}:s3:::{bucket}", FileKey=key, ObjectVersion="")
        log.info("using the user-supplied plugin %s; nothing downloaded", user_uri)
        return user_uri

    bucket, key = cr.required(properties, "Bucket"), cr.required(properties, "Key")
    url = cr.required(properties, "SourceUrl")
    expected = cr.required(properties, "Sha256").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise cr.PropertyError(f"property Sha256 must be 64 hex digits, not {expected!r}")
    parameter = cr.optional(properties, "UserS3UriParameterName", DEFAULT_PARAMETER_NAME)

    body = download(url, parameter)
    digest = hashlib.sha256(body)
    if digest.hexdigest() != expected:
        raise PluginError(
            f"Downloaded plugin fails the Sha256 check: expected {expected}, "
            f"downloaded {digest.hexdigest()}"
        )
    # S3 re-checks the same SHA-256 on arrival, so the staged object is exactly what was verified.
    response = clients("s3").put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType="application/java-archive",
        ChecksumSHA256=base64.b64encode(digest.digest()).decode(),
    )
    helper.Data.update(
        BucketArn=f"arn:{part}:s3:::{bucket}",
        FileKey=key,
        ObjectVersion=response.get("VersionId") or "",
    )
    log.info("staged %d bytes from %s at s3://%s/%s", len(body), url, bucket, key)
    return f"s3://{bucket}/{key}"


@helper.delete
def unstage(event, _context):
    properties = cr.props(event)
    if cr.optional(properties, "UserS3Uri"):
        log.info("user-supplied plugin: nothing of ours to delete")
        return None
    bucket, key = cr.optional(properties, "Bucket"), cr.optional(properties, "Key")
    if not bucket or not key or event.get("PhysicalResourceId") != f"s3://{bucket}/{key}":
        log.info("nothing was staged by this resource (%s)", event.get("PhysicalResourceId"))
        return None
    s3 = clients("s3")
    try:
        listing = s3.list_object_versions(Bucket=bucket, Prefix=key)
    except Exception as exc:
        if cr.error_code(exc) == "NoSuchBucket":
            log.info("bucket %s is already gone", bucket)
            return None
        raise
    versions = [
        {"Key": v["Key"], "VersionId": v["VersionId"]}
        for v in listing.get("Versions", []) + listing.get("DeleteMarkers", [])
        if v["Key"] == key
    ]
    if not versions:
        log.info("s3://%s/%s is already gone", bucket, key)
        return None
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": versions, "Quiet": True})
    if result.get("Errors"):
        error = result["Errors"][0]
        raise PluginError(
            f"deleting s3://{bucket}/{key} failed: {error['Code']} {error['Message']}"
        )
    log.info("deleted %d version(s) of s3://%s/%s", len(versions), bucket, key)
    return None
