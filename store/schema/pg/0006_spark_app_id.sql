-- As SQLite's 0012: the Spark application id the driver reported.
ALTER TABLE jobs ADD COLUMN spark_app_id TEXT;
