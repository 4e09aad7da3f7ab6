CREATE EXTENSION IF NOT EXISTS hstore;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE public.alltypes (
  id int PRIMARY KEY,
  c_bool bool, c_int2 int2, c_int8 int8, c_oid oid,
  c_float4 float4, c_float8 float8,
  c_numeric numeric, c_numeric_10_2 numeric(10,2), c_money money,
  c_text text, c_varchar varchar(20), c_bpchar char(5), c_name name, c_char "char",
  c_bytea bytea,
  c_date date, c_time time, c_time3 time(3), c_timetz timetz,
  c_ts timestamp, c_ts3 timestamp(3), c_tstz timestamptz, c_tstz2 timestamptz(2),
  c_interval interval,
  c_uuid uuid, c_json json, c_jsonb jsonb, c_xml xml,
  c_inet inet, c_cidr cidr, c_macaddr macaddr,
  c_bit1 bit(1), c_bit10 bit(10), c_varbit varbit,
  c_point point, c_hstore hstore, c_tsvector tsvector, c_int4range int4range,
  c_int4_arr int4[], c_text_arr text[], c_int2d int4[][], c_ts_arr timestamptz[], c_num_arr numeric(6,3)[],
  c_mood mood, c_mood_arr mood[], c_posint posint
);
ALTER TABLE public.alltypes REPLICA IDENTITY FULL;
CREATE TABLE public.toasty (id int PRIMARY KEY, big text, n int);
ALTER TABLE public.toasty ALTER COLUMN big SET STORAGE EXTERNAL;
CREATE PUBLICATION pub FOR TABLE public.alltypes, public.toasty;
SELECT pg_create_logical_replication_slot('slot', 'pgoutput');
