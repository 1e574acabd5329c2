#!/usr/bin/env python3
"""Package the `sam build` output for regional asset buckets and print Launch Stack URLs.

The aws-solutions layout: one set of templates that works in every Region, and the code they
point at copied to a bucket per Region, ``<bucket>-<region>``, under ``<solution>/<version>/``:

    <solution>/<version>/template.yaml            root stack (what Launch Stack opens)
    <solution>/<version>/nested/<name>.yaml       nested stacks
    <solution>/<version>/functions/<Id>-<sha>.zip Lambda code, one zip per function

Templates reach their Region's bucket through ``${AWS::Region}``/``${AWS::URLSuffix}``, so the
same files are uploaded everywhere. ``--dry-run`` writes the tree under --out and uploads nothing
(this is what the tests exercise: no AWS account here). ``--taskcat`` also writes a
``.taskcat.yml`` beside the packaged root so ``taskcat test run -p <out>/<solution>/<version>``
deploys the packaged templates (taskcat has no SAM packaging step of its own).

    python scripts/publish.py --build-dir .aws-sam/build --bucket my-assets \\
        --regions us-east-1 eu-west-1 [--dry-run] [--taskcat]
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import yaml

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = "flu-monitor"
# <bucket>-<region> must be a valid bucket name (3-63 lower-case letters, digits, dots, hyphens).
BUCKET_PREFIX = re.compile(r"^[a-z0-9][a-z0-9-]{1,40}[a-z0-9]$")
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same code always zips to the same bytes


class PublishError(RuntimeError):
    """The build cannot be packaged; the message says why."""


@dataclass(frozen=True)
class Layout:
    bucket: str  # prefix; the real bucket is <bucket>-<region>
    solution: str
    version: str

    @property
    def prefix(self) -> str:
        return f"{self.solution}/{self.version}"

    def region_bucket(self, region: str) -> str:
        return f"{self.bucket}-{region}"

    def object_url(self, key: str) -> dict:
        """The object's URL in the deploying Region's bucket, as a CloudFormation expression."""
        return {
            "Fn::Sub": f"https://{self.bucket}-${{AWS::Region}}.s3.${{AWS::Region}}.${{AWS::URLSuffix}}/{key}"
        }

    def launch_url(self, region: str) -> str:
        template_url = f"https://{self.region_bucket(region)}.s3.{region}.amazonaws.com/{self.prefix}/template.yaml"
        return (
            f"https://console.aws.amazon.com/cloudformation/home?region={region}"
            f"#/stacks/create/review?templateURL={quote(template_url, safe='')}"
            f"&stackName={self.solution}"
        )


def project_version() -> str:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["project"]["version"]


def zip_directory(directory: Path, target: Path) -> str:
    """Zip directory deterministically into target; return the zip's SHA-256."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    if not files:
        raise PublishError(f"{directory} is empty: run `make build` first")
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(directory).as_posix(), ZIP_EPOCH)
            info.external_attr = (0o755 if path.stat().st_mode & 0o111 else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return hashlib.sha256(target.read_bytes()).hexdigest()


def _nested_names(source_root: Path) -> dict[str, str]:
    """Nested stack logical ID -> file name (network.yaml ...), from the source root template."""
    body = yaml.load(source_root.read_text(encoding="utf-8"), Loader=_CfnLoader)
    return {
        name: Path(resource["Properties"]["TemplateURL"]).name
        for name, resource in body["Resources"].items()
        if resource.get("Type") == "AWS::CloudFormation::Stack"
    }


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation short-form tags (!Ref ...) as plain values."""


_CfnLoader.add_multi_constructor("!", lambda loader, _tag, node: None)


def package_template(built: Path, layout: Layout, out: Path, functions: dict[str, str]) -> dict:
    """Rewrite one built template: CodeUri -> regional S3 object. Zips its functions into out."""
    body = yaml.safe_load(built.read_text(encoding="utf-8"))
    for name, resource in body.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        code_dir = built.parent / resource["Properties"]["CodeUri"]
        if not code_dir.is_dir():
            raise PublishError(f"{built}: {name} has no build output at {code_dir}")
        tmp = out / "functions" / f"{name}.zip.tmp"
        digest = zip_directory(code_dir, tmp)
        key = f"{layout.prefix}/functions/{name}-{digest[:16]}.zip"
        tmp.rename(out.parent.parent / key)
        functions[key] = name
        resource["Properties"]["CodeUri"] = {
            "Bucket": {"Fn::Sub": f"{layout.bucket}-${{AWS::Region}}"},
            "Key": key,
        }
        resource.get("Metadata", {}).pop("BuildMethod", None)
    return body


def package(build_dir: Path, layout: Layout, dist: Path, source_root: Path) -> dict[str, Path]:
    """Write the packaged tree under dist; return {S3 key: local file}."""
    built_root = build_dir / "template.yaml"
    if not built_root.is_file():
        raise PublishError(f"{built_root} not found: run `make build` (sam build) first")
    out = dist / layout.prefix
    if out.exists():
        shutil.rmtree(out)  # leftovers of an earlier build must not be uploaded
    out.mkdir(parents=True)
    (out / "functions").mkdir(exist_ok=True)
    functions: dict[str, str] = {}
    names = _nested_names(source_root)
    root = yaml.safe_load(built_root.read_text(encoding="utf-8"))
    for logical_id, resource in root["Resources"].items():
        if resource.get("Type") != "AWS::CloudFormation::Stack":
            continue
        built_nested = build_dir / resource["Properties"]["TemplateURL"]
        key = f"{layout.prefix}/nested/{names[logical_id]}"
        nested = package_template(built_nested, layout, out, functions)
        _write_yaml(dist / key, nested)
        resource["Properties"]["TemplateURL"] = layout.object_url(key)
    _write_yaml(out / "template.yaml", root)
    return {str(p.relative_to(dist)): p for p in sorted(out.rglob("*")) if p.is_file()}


def _write_yaml(path: Path, body: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(body, sort_keys=False, width=100), encoding="utf-8")


def write_taskcat_config(source_config: Path, out: Path, regions: list[str]) -> Path:
    """A .taskcat.yml beside the packaged root: the deployable scenarios, published Regions only."""
    config = yaml.safe_load(source_config.read_text(encoding="utf-8"))
    tests = {}
    for name, test in config["tests"].items():
        if test["template"] != "template.yaml":
            continue  # nested templates are named in the source config for `taskcat lint` only
        test_regions = [r for r in test.get("regions", regions) if r in regions]
        if test_regions:
            tests[name] = {**test, "regions": test_regions}
    if not tests:
        raise PublishError(f"no taskcat test runs in the published Regions {regions}")
    project_regions = config["project"].get("regions", regions)
    config["project"]["regions"] = [r for r in project_regions if r in regions]
    config["tests"] = tests
    target = out / ".taskcat.yml"
    target.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return target


def upload(files: dict[str, Path], layout: Layout, regions: list[str]) -> None:
    import boto3  # only a real publish needs AWS

    for region in regions:
        s3 = boto3.client("s3", region_name=region)
        bucket = layout.region_bucket(region)
        for key, path in files.items():
            content_type = "application/zip" if key.endswith(".zip") else "text/yaml"
            s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": content_type})
        print(f"uploaded {len(files)} files to s3://{bucket}/{layout.prefix}/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    parser.add_argument(
        "--bucket", required=True, help="bucket prefix: uploads go to <bucket>-<region>"
    )
    parser.add_argument("--regions", nargs="+", required=True)
    parser.add_argument("--version", default=None, help="default: the version in pyproject.toml")
    parser.add_argument("--solution", default=SOLUTION)
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument("--dry-run", action="store_true", help="package only, upload nothing")
    parser.add_argument("--taskcat", action="store_true", help="write .taskcat.yml beside the root")
    args = parser.parse_args(argv)

    if not BUCKET_PREFIX.fullmatch(args.bucket):
        parser.error(
            f"--bucket {args.bucket!r}: use 3-42 lower-case letters, digits and hyphens "
            "(each Region's bucket is <bucket>-<region>)"
        )
    layout = Layout(args.bucket, args.solution, args.version or project_version())
    try:
        files = package(args.build_dir, layout, args.out, ROOT / "template.yaml")
        if args.taskcat:
            out = args.out / layout.prefix
            config = write_taskcat_config(ROOT / ".taskcat.yml", out, args.regions)
            print(f"taskcat config: {config} (taskcat test run -p {config.parent})")
        if not args.dry_run:
            upload(files, layout, args.regions)
    except PublishError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    suffix = " (dry run: nothing uploaded)" if args.dry_run else ""
    print(f"packaged {len(files)} files under {args.out / layout.prefix}{suffix}")
    print("Launch Stack URLs:")
    for region in args.regions:
        print(f"  {region}: {layout.launch_url(region)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
