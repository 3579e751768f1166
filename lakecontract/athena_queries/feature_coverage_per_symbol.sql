-- Feature coverage per symbol in gold_features_1d: history length and completeness of each symbol.
-- Answers "is there enough labelled, warmed-up data to train on for each symbol?": row count,
-- first/last bar, warm rows, the share of rows with a label (label_up is null only on each
-- symbol's last bar) and the non-null share of key features (null during their warm-up).
-- Portable SQL: runs unchanged on Athena (Trino, engine v3) and Spark SQL 3.5.
SELECT
    symbol,
    COUNT(*) AS row_count,
    MIN(ts) AS first_ts,
    MAX(ts) AS last_ts,
    SUM(CASE WHEN is_warm THEN 1 ELSE 0 END) AS warm_rows,
    CAST(COUNT(label_up) AS DOUBLE) / COUNT(*) AS label_up_share,
    CAST(COUNT(rsi_14) AS DOUBLE) / COUNT(*) AS rsi_14_share,
    CAST(COUNT(macd) AS DOUBLE) / COUNT(*) AS macd_share,
    CAST(COUNT(atr_14) AS DOUBLE) / COUNT(*) AS atr_14_share,
    CAST(COUNT(volatility_20) AS DOUBLE) / COUNT(*) AS volatility_20_share,
    CAST(COUNT(sma_50) AS DOUBLE) / COUNT(*) AS sma_50_share,
    MAX(computed_at) AS computed_at
FROM gold_features_1d
GROUP BY symbol
ORDER BY symbol
