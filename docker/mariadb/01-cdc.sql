-- Run once by the mariadb image on a fresh data directory, as root, after it created the
-- database shop (MARIADB_DATABASE): a table to capture, and a user cdcd reads it with.
CREATE TABLE shop.orders (
    id bigint PRIMARY KEY,
    customer varchar(100) NOT NULL,
    amount decimal(10, 2) NOT NULL,
    created_at timestamp(6) NOT NULL DEFAULT current_timestamp(6)
);
INSERT INTO shop.orders (id, customer, amount) VALUES (1, 'ada', 12.50), (2, 'grace', 7.25);

-- REPLICATION SLAVE: read the binlog; BINLOG MONITOR: its positions; RELOAD: the brief
-- FLUSH TABLES WITH READ LOCK a snapshot falls back to; SELECT: the snapshot. The password
-- is the sample's (CDCD_SOURCE_PASSWORD of the cdcd-mariadb service): change both.
CREATE USER 'cdc'@'%' IDENTIFIED BY 'cdc-sample-password';
GRANT REPLICATION SLAVE, BINLOG MONITOR, RELOAD ON *.* TO 'cdc'@'%';
GRANT SELECT ON shop.* TO 'cdc'@'%';
