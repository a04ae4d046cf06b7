-- Run once by the postgres image on an empty data volume, as $POSTGRES_USER, so
-- that role owns the databases. One database per service, as in
-- deploy/postgres/run.sh (which also makes knowflow_test for the test suite).
CREATE DATABASE knowflow_identity;
CREATE DATABASE knowflow_posts;
CREATE DATABASE knowflow_search;
CREATE DATABASE knowflow_digests;
CREATE DATABASE knowflow_notifications;
