-- Latest prediction per symbol: the newest bar scored by the newest published model version.
-- Answers "what does the current model say about each symbol right now?" (signal, P(up),
-- predicted close) next to the naive baseline's P(up) and whether each model was promoted.
-- model_version is a sortable UTC stamp (YYYYMMDDTHHMMSSZ), so MAX() is the newest version.
-- Portable SQL: runs unchanged on Athena (Trino, engine v3) and Spark SQL 3.5.
WITH newest_version AS (
    SELECT MAX(model_version) AS model_version
    FROM gold_predictions
),
ranked AS (
    SELECT
        p.symbol,
        p.interval,
        p.ts,
        p.close,
        p.prob_up,
        p.signal,
        p.predicted_return,
        p.predicted_close,
        p.model_version,
        p.direction_model,
        p.direction_promoted,
        p.return_model,
        p.return_promoted,
        p.baseline_prob_up,
        p.scored_at,
        row_number() OVER (PARTITION BY p.symbol, p.interval ORDER BY p.ts DESC) AS rn
    FROM gold_predictions p
    JOIN newest_version v ON p.model_version = v.model_version
)
SELECT
    r.symbol,
    r.interval,
    r.ts,
    r.close,
    r.prob_up,
    r.signal,
    r.predicted_return,
    r.predicted_close,
    r.model_version,
    r.direction_model,
    r.direction_promoted,
    r.return_model,
    r.return_promoted,
    r.baseline_prob_up,
    r.scored_at
FROM ranked r
WHERE r.rn = 1
ORDER BY r.symbol, r.interval
