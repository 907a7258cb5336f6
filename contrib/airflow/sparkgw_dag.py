"""Submit a Spark job through sparkgw, once with Livy's operator and once
with the native REST API. See README.md beside this file."""
import json
import os
from datetime import datetime, timedelta

from airflow import DAG
from airflow.providers.apache.livy.operators.livy import LivyOperator
from airflow.providers.http.operators.http import HttpOperator
from airflow.providers.http.sensors.http import HttpSensor

# The HTTP operators' headers are templated: the token comes from an
# Airflow variable at run time. LivyOperator's extra_headers are not, so
# its token is read from the scheduler's environment when the DAG is parsed.
AUTH = {"Authorization": "Bearer {{ var.value.sparkgw_token }}"}
LIVY_AUTH = {"Authorization": "Bearer " + os.environ.get("SPARKGW_TOKEN", "")}

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "REJECTED"}


def job_ended(response):
    """The sensor's check: done once the job ended; a failure fails the task."""
    state = response.json()["state"]
    if state in TERMINAL - {"SUCCEEDED"}:
        raise ValueError(f"job {response.json()['id']} ended {state}: {response.json().get('message')}")
    return state == "SUCCEEDED"


with DAG(
    dag_id="sparkgw_daily_sessionize",
    start_date=datetime(2026, 11, 1),
    schedule="@daily",
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["spark", "sparkgw"],
) as dag:
    # 1. Livy: the operator polls GET /batches/{id}/state until success or
    #    dead, then prints GET /batches/{id}/log.
    via_livy = LivyOperator(
        task_id="sessionize_via_livy",
        livy_conn_id="sparkgw_livy",
        file="s3a://analytics-artifacts/jobs/sessionize-assembly-2.14.3.jar",
        class_name="com.example.analytics.sessionize.DailySessionizeJob",
        args=["--date", "{{ ds }}"],
        name="sessionize-{{ ds_nodash }}",
        queue="etl",
        driver_memory="4g",
        driver_cores=1,
        executor_memory="8g",
        executor_cores=4,
        num_executors=20,
        conf={"spark.sql.shuffle.partitions": "400"},
        extra_headers=LIVY_AUTH,
        polling_interval=15,
    )

    # 2. Native: POST /api/v1/jobs with an Idempotency-Key made of the run,
    #    so that a retried task finds the job its first try stored rather
    #    than submit a second one.
    submit = HttpOperator(
        task_id="sessionize_submit",
        http_conn_id="sparkgw",
        endpoint="/api/v1/jobs",
        method="POST",
        headers={**AUTH, "Content-Type": "application/json",
                 "Idempotency-Key": "sessionize-{{ ds_nodash }}"},
        data=json.dumps({
            "name": "sessionize-{{ ds_nodash }}",
            "labels": {"team": "data", "priority": "high", "workload": "etl"},
            "spec": {
                "type": "Scala",
                "sparkVersion": "3.5.1",
                "mainClass": "com.example.analytics.sessionize.DailySessionizeJob",
                "mainApplicationFile": "s3a://analytics-artifacts/jobs/sessionize-assembly-2.14.3.jar",
                "arguments": ["--date", "{{ ds }}"],
                "driver": {"cores": 1, "memory": "4g"},
                "executor": {"instances": 20, "cores": 4, "memory": "8g"},
            },
        }),
        response_filter=lambda response: response.json()["id"],
        log_response=True,
    )

    wait = HttpSensor(
        task_id="sessionize_wait",
        http_conn_id="sparkgw",
        endpoint="/api/v1/jobs/{{ ti.xcom_pull(task_ids='sessionize_submit') }}",
        headers=AUTH,
        response_check=job_ended,
        poke_interval=15,
        timeout=6 * 3600,
        mode="reschedule",
    )

    submit >> wait
