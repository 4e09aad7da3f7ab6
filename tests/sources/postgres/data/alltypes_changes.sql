SET TimeZone = 'UTC';
BEGIN;
INSERT INTO public.alltypes VALUES (
  1, true, -32768, 9223372036854775807, 4294967295,
  1.1, 'NaN', 12345.678900, -123.45, '-1234.56',
  'héllo "wörld"', 'vc', 'ab', 'nm', 'x',
  '\x0001ff'::bytea,
  '2024-02-29', '23:59:59.999999', '04:05:06.789', '04:05:06.789+02',
  '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.123', '2024-01-02 03:04:05.1+05:30', '2024-01-02 03:04:05.1+00',
  '1 year 2 mons 3 days 04:05:06.789',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2]}', '{"b": 1, "a": "x"}', '<a>x</a>',
  '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03',
  B'1', B'1000000001', B'101',
  '(1.5,-2)', 'a=>1, "b c"=>NULL', 'a fat cat', '[1,10)',
  '{1,NULL,3}', '{"a,b",NULL,"NULL","q\"x"}', '{{1,2},{3,4}}', '{"2024-01-02 03:04:05+00"}', '{1.5,NULL}',
  'happy', '{sad,ok}', 7
);
INSERT INTO public.alltypes (id, c_date, c_ts, c_tstz, c_float8, c_interval, c_numeric)
  VALUES (2, 'infinity', '-infinity', 'infinity', '-Infinity', '-1 days -00:00:00.5', 0);
UPDATE public.alltypes SET c_text = 'changed' WHERE id = 2;
DELETE FROM public.alltypes WHERE id = 2;
COMMIT;
INSERT INTO public.toasty SELECT 1, string_agg(md5(g::text), ''), 1 FROM generate_series(1, 80) g;
UPDATE public.toasty SET n = 2 WHERE id = 1;
SELECT pg_logical_emit_message(true, 'cdcd.test', 'transactional ✓');
SELECT pg_logical_emit_message(false, 'cdcd.test', '\x00ff'::bytea);
TRUNCATE public.toasty RESTART IDENTITY CASCADE;
SELECT pg_replication_origin_create('upstream');
SELECT pg_replication_origin_session_setup('upstream');
BEGIN;
SELECT pg_replication_origin_xact_setup('0/ABCDEF', '2024-01-02 03:04:05+00');
INSERT INTO public.toasty VALUES (2, 'small', 3);
COMMIT;
UPDATE public.toasty SET id = 3 WHERE id = 2;
DELETE FROM public.toasty WHERE id = 3;
