"""Kafka Connect schemas of what cdcd writes: a column's from what its source knows of
its type (``postgres``, ``mysql``), whole messages' (``envelope``), in the JsonConverter's
JSON form (``connect``) and in Avro as Confluent's AvroConverter makes them (``avro``)."""
