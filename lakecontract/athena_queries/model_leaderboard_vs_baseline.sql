-- Model leaderboard against the naive baselines, one row per trained model.
-- Answers "which models beat their baseline, by how much, and which one is promoted?".
-- Every key metric is lower-is-better (brier for task direction, mase for task return; see
-- lakehouse/ml/evaluate.py KEY_METRIC), so improvement = baseline_value - key_value (> 0 is better)
-- and rank_in_task 1 is the best model of its version and task. beats_baseline is computed here
-- from the two numbers (as export decides promotion), not read from the registry's flag: true only
-- when both are finite and the key value is lower. The finiteness test is ABS(x) <= the largest
-- double, false for NaN and +-infinity in both engines (Spark orders NaN above every number, so a
-- bare key_value < NaN baseline would be true there; Trino has is_finite, Spark has not).
-- Portable SQL: runs unchanged on Athena (Trino, engine v3) and Spark SQL 3.5.
SELECT
    model_version,
    task,
    algorithm,
    key_metric,
    key_value,
    baseline_value,
    baseline_value - key_value AS improvement,
    CASE
        WHEN baseline_value <> 0 THEN (baseline_value - key_value) / baseline_value
    END AS improvement_ratio,
    COALESCE(
        ABS(key_value) <= 1.7976931348623157E308
        AND ABS(baseline_value) <= 1.7976931348623157E308
        AND key_value < baseline_value,
        false
    ) AS beats_baseline,
    promoted,
    row_number() OVER (PARTITION BY model_version, task ORDER BY key_value ASC NULLS LAST, algorithm) AS rank_in_task,
    trained_at
FROM gold_model_registry
ORDER BY model_version DESC, task, key_value ASC NULLS LAST, algorithm
