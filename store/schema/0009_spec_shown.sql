-- The spec as the API shows it, secrets redacted, written at submission so
-- that reads never parse a spec to redact it: '' when nothing is redacted
-- (the spec is shown as is), NULL for jobs from before this column (read
-- and redacted then).
ALTER TABLE jobs ADD COLUMN spec_shown TEXT;
