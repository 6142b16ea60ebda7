//! Black-box tests: the real `herald` binary, started on a free port against
//! SQLite (always) and PostgreSQL (when `HERALD_TEST_DATABASE_URL` is set),
//! driven over HTTP, delivering to local servers that play the receivers.

mod helpers;
mod sink;
mod smtp;

mod catalogue;
mod channels;
mod channels_apprise;
mod channels_bots;
mod channels_chat;
mod channels_email;
mod channels_outcomes;
mod channels_tickets;
mod channels_web_push;
mod cluster;
mod crash;
mod delivery;
mod events;
mod inbox;
mod inbox_live;
mod integrations;
mod isolation;
mod lifecycle;
mod ops;
mod people;
mod recipients;
