"""Secrets evaluation: recall counts any finding, recall_credentials_only only credentials."""
from __future__ import annotations

import json

from bench.eval_pii_secrets import evaluate_secrets

ACCOUNT = "7039" + "4815" + "0225"
GH_TOKEN = "gh" + "p_" + "8fK2mQ9xL4vT7bN1cR6yW3pZ0sD5hJ2aE9uF"


def test_an_identifier_only_record_counts_for_recall_but_not_for_credentials_only_recall(tmp_path):
    rows = [
        {"text": f"token = {GH_TOKEN}", "label": "secret", "secret_type": "github"},
        {"text": f"arn:aws:iam::{ACCOUNT}:role/ci", "label": "secret", "secret_type": "arn"},
        {"text": "arn:aws:iam::<account-id>:role/ci", "label": "negative", "secret_type": "arn"},
    ]
    (tmp_path / "secrets_tiny.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = evaluate_secrets(tmp_path, ["How do I rotate an IAM role?"], progress=False)
    assert result["recall"] == 1.0 and result["recall_credentials_only"] == 0.5
    assert result["fpr_negative"] == 0.0 and result["fpr_benign"] == 0.0
    assert result["by_type"]["arn"] == {"support": 1, "recall": 1.0, "recall_credentials_only": 0.0}
    assert result["by_file"]["secrets_tiny"]["recall_credentials_only"] == 0.5
