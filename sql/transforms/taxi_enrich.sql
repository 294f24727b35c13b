-- taxi_enrich.sql: all trip columns plus derived fields.
--   trip_duration_s  : dropoff - pickup in whole seconds (Int64)
--   avg_speed_mph    : trip_distance / hours, NULL when the duration is not positive
--   pickup_date      : calendar date of the pickup (Date32)
--   pickup_hour      : hour of day 0..23 of the pickup (Int32)
--   tip_pct          : tip as a percentage of the fare, NULL when the fare is not positive
SELECT
  *,
  CAST(date_part('epoch', tpep_dropoff_datetime) - date_part('epoch', tpep_pickup_datetime) AS BIGINT)
    AS trip_duration_s,
  CASE
    WHEN tpep_dropoff_datetime > tpep_pickup_datetime
    THEN trip_distance * 3600.0
         / (date_part('epoch', tpep_dropoff_datetime) - date_part('epoch', tpep_pickup_datetime))
  END AS avg_speed_mph,
  CAST(tpep_pickup_datetime AS DATE) AS pickup_date,
  CAST(date_part('hour', tpep_pickup_datetime) AS INT) AS pickup_hour,
  CASE WHEN fare_amount > 0 THEN tip_amount * 100.0 / fare_amount END AS tip_pct
FROM input
