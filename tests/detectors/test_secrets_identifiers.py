"""Secrets detector, infrastructure identifiers: ARNs, account IDs, bucket endpoints, store domains.

They are reported with kind "identifier" (never "credential") across the general grammar of
each, and documentation templates of them are not reported.
"""

from __future__ import annotations

import pytest

from detectors.secrets import SecretsDetector

# Invented account IDs (neither filler nor a run), assembled at run time.
ACCOUNT = "7039" + "4815" + "0225"
ACCOUNT_2 = "5182" + "0374" + "6901"


@pytest.fixture(scope="module")
def detector() -> SecretsDetector:
    return SecretsDetector()


def only(detector: SecretsDetector, text: str) -> tuple[str, str, str]:
    found = detector.scan(text)
    assert len(found) == 1, found
    f = found[0]
    return f.kind, f.secret_type, text[f.start : f.end]


ARNS = [
    f"arn:aws:sns:us-west-2:{ACCOUNT}:billing-alarms",
    f"arn:aws:iam::{ACCOUNT}:role/service-role/ingest-lambda",
    f"arn:aws:lambda:eu-central-1:{ACCOUNT_2}:function:invoice-sync:live",
    f"arn:aws:kms:ap-southeast-2:{ACCOUNT}:key/2f1c9a7e-0b4d-4e61-9c3a-5d7e8f901234",
    f"arn:aws-cn:ec2:cn-north-1:{ACCOUNT_2}:instance/i-0c4f2a9e71b3d5860",
    f"arn:aws-us-gov:dynamodb:us-gov-west-1:{ACCOUNT}:table/claims",
    "arn:aws:s3:::northwind-payroll-exports/2024/*",
    f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/*",
]


@pytest.mark.parametrize("arn", ARNS)
def test_arns_of_any_service_and_partition_are_identifiers(detector: SecretsDetector, arn: str) -> None:
    text = f'the policy grants "Resource": "{arn}" to the build role'
    assert only(detector, text) == ("identifier", "aws_arn", arn)


@pytest.mark.parametrize(
    "text, secret_type, value",
    [
        ("https://nw-ledger-2024.s3.eu-west-1.amazonaws.com/q3.csv", "aws_s3_bucket",
         "nw-ledger-2024.s3.eu-west-1.amazonaws.com"),
        ("curl http://nw-ledger-2024.s3-us-east-2.amazonaws.com", "aws_s3_bucket",
         "nw-ledger-2024.s3-us-east-2.amazonaws.com"),
        ("curl https://nw-ledger-2024.s3.amazonaws.com/index.html", "aws_s3_bucket",
         "nw-ledger-2024.s3.amazonaws.com"),
        ("GET https://s3.us-west-2.amazonaws.com/nw-ledger-2024/q3.csv", "aws_s3_bucket",
         "s3.us-west-2.amazonaws.com/nw-ledger-2024"),
        ("aws s3 sync s3://nw-ml-training-sets/v2/ ./data", "aws_s3_bucket", "s3://nw-ml-training-sets"),
        ("spark.read.parquet('s3a://nw-lakehouse-raw/events')", "aws_s3_bucket", "s3a://nw-lakehouse-raw"),
        ("gsutil cp model.pt gs://nw-vertex-artifacts/models/", "gcs_bucket", "gs://nw-vertex-artifacts"),
        ("see https://storage.googleapis.com/nw-vertex-artifacts/report.html", "gcs_bucket",
         "storage.googleapis.com/nw-vertex-artifacts"),
        ("see https://nw-vertex-artifacts.storage.googleapis.com/report.html", "gcs_bucket",
         "nw-vertex-artifacts.storage.googleapis.com"),
        ("upload to https://nwprodlogs01.blob.core.windows.net/audit/x.json", "azure_storage_account",
         "nwprodlogs01.blob.core.windows.net"),
        ("queue at https://nwprodlogs01.queue.core.windows.net/", "azure_storage_account",
         "nwprodlogs01.queue.core.windows.net"),
        ("the shop lives at https://northwind-outlet.myshopify.com/admin", "shopify_domain",
         "northwind-outlet.myshopify.com"),
        (f"AWS_ACCOUNT_ID={ACCOUNT}", "aws_account_id", ACCOUNT),
        (f"our AWS account ID is {ACCOUNT_2}.", "aws_account_id", ACCOUNT_2),
        (f"docker push {ACCOUNT}.dkr.ecr.eu-central-1.amazonaws.com/api:1.4", "aws_ecr_registry",
         f"{ACCOUNT}.dkr.ecr.eu-central-1.amazonaws.com"),
        (f"QueueUrl=https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/orders-dlq", "aws_sqs_queue",
         f"sqs.us-east-1.amazonaws.com/{ACCOUNT}/orders-dlq"),
    ],
)
def test_bucket_account_and_store_endpoints_are_identifiers(
    detector: SecretsDetector, text: str, secret_type: str, value: str
) -> None:
    assert only(detector, text) == ("identifier", secret_type, value)


@pytest.mark.parametrize(
    "text",
    [
        "What does ARN stand for, and where do I find the arn of my role?",
        "arn:aws:iam::123456789012:role/MyRole",          # the documentation account
        "arn:aws:iam::111122223333:user/Alice",           # the other documentation account
        "arn:aws:iam::aws:policy/AdministratorAccess",    # AWS-managed: public
        "arn:aws:iam::<account-id>:role/<role-name>",
        "arn:aws:s3:::my-bucket/*",
        "arn:aws:s3:::DOC-EXAMPLE-BUCKET/*",
        "arn:aws:s3:::amzn-s3-demo-bucket",
        "arn:aws:s3:::*",
        "arn:aws:ec2:*:*:instance/*",
        '"Resource": "arn:aws:states:::sqs:sendMessage"',  # a Step Functions integration
        "https://bucket.s3.amazonaws.com/key",
        "https://s3.amazonaws.com/bucket-name/key",
        "aws s3 cp file s3://your-bucket-name/prefix/",
        "s3://${BUCKET}/data and s3://{bucket}/data and s3://<bucket>/data",
        "https://storage.googleapis.com/bucket_name/object_name",
        "gs://my-bucket/path",
        "https://<account>.blob.core.windows.net/",
        "https://mystorageaccount.blob.core.windows.net/container",
        "http://devstoreaccount1.blob.core.windows.net/",  # the storage emulator's account
        "https://your-store.myshopify.com/admin",
        "https://{shop}.myshopify.com/admin/api",
        '"AWS_ACCOUNT_ID"=>0000-0000-0000',
        "aws_account_id = 123456789012",
    ],
)
def test_templates_and_near_misses_are_not_identifiers(detector: SecretsDetector, text: str) -> None:
    assert detector.scan(text) == []


def test_a_credential_next_to_an_identifier_keeps_its_own_kind(detector: SecretsDetector) -> None:
    key = "AK" + "IA" + "QYLPMN5HJ3TQ7XWZ"
    text = f"https://{key}@nw-ledger-2024.s3.amazonaws.com/ and arn:aws:iam::{ACCOUNT}:user/ci"
    found = [(f.kind, f.secret_type, text[f.start : f.end]) for f in detector.scan(text)]
    assert found == [
        ("credential", "aws_access_key_id", key),
        ("identifier", "aws_s3_bucket", "nw-ledger-2024.s3.amazonaws.com"),
        ("identifier", "aws_arn", f"arn:aws:iam::{ACCOUNT}:user/ci"),
    ]


def test_existing_credential_rules_are_all_of_kind_credential(detector: SecretsDetector) -> None:
    key = "gh" + "p_" + "8fK2mQ9xL4vT7bN1cR6yW3pZ0sD5hJ2aE9uF"
    assert [f.kind for f in detector.scan(f"token {key}")] == ["credential"]
    kinds = {r.kind for r in detector.rules}
    assert kinds == {"credential", "identifier"}
    assert {r.secret_type for r in detector.rules if r.kind == "identifier"} >= {
        "aws_arn", "aws_account_id", "aws_s3_bucket", "gcs_bucket", "azure_storage_account", "shopify_domain",
    }


def test_output_scanner_reports_identifiers_apart_from_secrets() -> None:
    from detectors.output import OutputScanner

    key = "gh" + "p_" + "8fK2mQ9xL4vT7bN1cR6yW3pZ0sD5hJ2aE9uF"
    arn = f"arn:aws:iam::{ACCOUNT}:role/deploy"
    text = f"Attach the policy to {arn}, then export GITHUB_TOKEN={key} and retry."
    found = OutputScanner(pii_types=()).scan_text(text)
    assert sorted((f.kind, f.type, text[f.start : f.end]) for f in found) == [
        ("identifier", "aws_arn", arn),
        ("secret", "github_token", key),
    ]
