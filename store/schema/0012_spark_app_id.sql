-- The Spark application id a job's driver reported (the spark-app-selector
-- label, the operator's status.sparkApplicationId), which names it in the
-- Spark History Server.
ALTER TABLE jobs ADD COLUMN spark_app_id TEXT;
