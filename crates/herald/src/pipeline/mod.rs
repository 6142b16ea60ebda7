//! The data flow of `DESIGN.md` as tasks: ingest (group commit) → router
//! (events become deliveries) → worker (claim, send, record).

pub mod attempt;
mod inbox;
pub mod ingest;
mod people;
mod push;
pub mod router;
pub mod wake;
pub mod worker;
