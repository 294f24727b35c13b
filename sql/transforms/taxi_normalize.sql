-- taxi_normalize.sql: compact, documented types for the TLC yellow-taxi schema.
--   vendor_id, ratecode_id, payment_type : small integer codes (TINYINT / Int8)
--     VendorID 1 = Creative Mobile, 2 = Curb/VeriFone, 6 = Myle, 7 = Helix
--     RatecodeID 1..6 and 99 = unknown; payment_type 0..6
--   passenger_count                       : SMALLINT (Int16)
--   store_and_fwd                         : 'Y' -> true, 'N' -> false, anything else -> NULL
--   money columns                         : DECIMAL(10,2), exact cents as published by the TLC
--   location ids                          : SMALLINT (zones 1..265)
-- Columns are renamed to snake_case so they need no quoting downstream.
SELECT
  CAST("VendorID" AS TINYINT)                AS vendor_id,
  tpep_pickup_datetime                       AS pickup_at,
  tpep_dropoff_datetime                      AS dropoff_at,
  CAST(passenger_count AS SMALLINT)          AS passenger_count,
  trip_distance                              AS trip_distance_mi,
  CAST("RatecodeID" AS TINYINT)              AS ratecode_id,
  CASE store_and_fwd_flag WHEN 'Y' THEN true WHEN 'N' THEN false END AS store_and_fwd,
  CAST("PULocationID" AS SMALLINT)           AS pickup_location_id,
  CAST("DOLocationID" AS SMALLINT)           AS dropoff_location_id,
  CAST(payment_type AS TINYINT)              AS payment_type,
  CAST(fare_amount AS DECIMAL(10, 2))           AS fare_amount,
  CAST(extra AS DECIMAL(10, 2))                 AS extra,
  CAST(mta_tax AS DECIMAL(10, 2))               AS mta_tax,
  CAST(tip_amount AS DECIMAL(10, 2))            AS tip_amount,
  CAST(tolls_amount AS DECIMAL(10, 2))          AS tolls_amount,
  CAST(improvement_surcharge AS DECIMAL(10, 2)) AS improvement_surcharge,
  CAST(total_amount AS DECIMAL(10, 2))          AS total_amount,
  CAST(congestion_surcharge AS DECIMAL(10, 2))  AS congestion_surcharge,
  CAST(airport_fee AS DECIMAL(10, 2))           AS airport_fee
FROM input
