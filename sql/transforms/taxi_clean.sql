-- taxi_clean.sql: drops physically impossible or corrupt trips; columns are unchanged.
-- A trip is kept only if
--   * the dropoff is strictly after the pickup,
--   * distance, fare and total are not negative,
--   * the average speed is at most 150 mph,
--   * passenger_count is unknown (NULL) or at most 9.
SELECT *
FROM input
WHERE tpep_dropoff_datetime > tpep_pickup_datetime
  AND trip_distance >= 0
  AND fare_amount >= 0
  AND total_amount >= 0
  AND trip_distance * 3600.0
      / (date_part('epoch', tpep_dropoff_datetime) - date_part('epoch', tpep_pickup_datetime))
      <= 150.0
  AND (passenger_count IS NULL OR passenger_count <= 9)
