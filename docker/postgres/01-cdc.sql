-- Run once by the postgres image on a fresh data directory, as the superuser, in database
-- shop (POSTGRES_DB): a table to capture, and a role cdcd can stream and snapshot it with.
CREATE TABLE public.orders (
    id bigint PRIMARY KEY,
    customer text NOT NULL,
    amount numeric(10, 2) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO public.orders (id, customer, amount) VALUES (1, 'ada', 12.50), (2, 'grace', 7.25);

-- REPLICATION: the slot and the stream; SELECT: the initial snapshot. The password is the
-- sample's (CDCD_SOURCE_PASSWORD of the cdcd-postgres service): change both.
CREATE ROLE cdc LOGIN REPLICATION PASSWORD 'cdc-sample-password';
GRANT SELECT ON public.orders TO cdc;

-- The publication cdcd streams (cdcd_<name>), made here by the table's owner: cdcd would
-- have to own the table to create it FOR TABLE itself.
CREATE PUBLICATION cdcd_pgshop FOR TABLE public.orders;
