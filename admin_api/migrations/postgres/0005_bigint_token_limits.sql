-- Tokens-per-minute limits may exceed 2^31 (large tenants; the API allows up to 10^12): 64-bit columns.

ALTER TABLE tenants ALTER COLUMN tpm TYPE BIGINT;
ALTER TABLE api_keys ALTER COLUMN tpm TYPE BIGINT;
