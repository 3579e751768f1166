-- Data-quality failures of the last 7 days, one row per table/layer/tier/expectation.
-- Answers "which expectations failed this week, how often, and are they still failing?":
-- evaluations and failed counts, unexpected-row counts, the last run and the last failure.
-- Expectations that never failed are listed too (failed = 0), so a healthy lake still returns
-- rows; failures sort first, most failures first.
-- Portable SQL: runs unchanged on Athena (Trino, engine v3) and Spark SQL 3.5.
SELECT
    table_name,
    layer,
    tier,
    expectation,
    expectation_type,
    COUNT(*) AS evaluations,
    SUM(CASE WHEN success THEN 0 ELSE 1 END) AS failed,
    SUM(COALESCE(unexpected_count, 0)) AS unexpected_total,
    MAX(unexpected_count) AS max_unexpected_count,
    MAX(unexpected_percent) AS max_unexpected_percent,
    MAX(started_at) AS last_run_at,
    MAX(CASE WHEN success THEN NULL ELSE started_at END) AS last_failed_at,
    max_by(success, started_at) AS last_success
FROM gold_dq_results
WHERE started_at >= current_timestamp - INTERVAL '7' DAY
GROUP BY table_name, layer, tier, expectation, expectation_type
ORDER BY failed DESC, table_name, layer, tier, expectation
