//! Herald's pure core: the vocabulary of `DESIGN.md` as types, and the
//! decisions that need no I/O (which rules match an event, when to retry).
//!
//! Nothing here touches the network, the database or the clock on its own:
//! callers pass `now` in, so every decision is a function of its inputs.

pub mod condition;
pub mod event;
pub mod glob;
pub mod id;
pub mod outcome;
pub mod retry;
pub mod router;

pub use condition::{Condition, ConditionError};
pub use event::{EventType, Severity};
pub use id::{DeliveryId, EventId, IdError, IntegrationId, KeyId, RuleId};
pub use outcome::Outcome;
pub use retry::{RetryDecision, RetryPolicy};
