import pytest

from pipeline.policy import compile_policy, validate_policy


def test_platform_defaults_enable_every_detector_and_the_cache():
    p = compile_policy()
    assert p.shape == ("injection_scan", "pii_redact", "secrets_scan", "cache_lookup", "cache_store", "output_scan")
    assert p.allowed_models is None and p.injection_action == "block"


def test_layers_merge_lowest_first_and_change_the_shape():
    p = compile_policy({"cache": {"enabled": False}}, {"pii": {"enabled": False}, "models": {"allow": ["m1"]}})
    assert "cache_lookup" not in p.shape and "pii_redact" not in p.shape
    assert p.allowed_models == frozenset({"m1"})
    assert p.fingerprint != compile_policy().fingerprint


def test_same_document_gives_the_same_fingerprint():
    assert compile_policy({"max_tokens": 5}).fingerprint == compile_policy({"max_tokens": 5}).fingerprint


@pytest.mark.parametrize("doc, fragment", [
    ({"injection": {"thresholds": {"user": 2}}}, "injection.thresholds.user"),
    ({"pii": {"entities": {"EMAIL_ADDRESS": "shred"}}}, "pii.entities.EMAIL_ADDRESS"),
    ({"max_tokens": 0}, "max_tokens"),
])
def test_invalid_documents_are_reported_with_their_path(doc, fragment):
    errors = validate_policy(doc)
    assert errors and fragment in errors[0]


def test_invalid_layer_refuses_to_compile():
    with pytest.raises(ValueError, match="invalid policy"):
        compile_policy({"secrets": {"action": "ignore"}})
