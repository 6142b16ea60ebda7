//! Herald's pure core: the vocabulary of `DESIGN.md` as types, and the
//! decisions that need no I/O (which rules match an event, when to retry).
//!
//! Nothing here touches the network, the database or the clock on its own:
//! callers pass `now` in, so every decision is a function of its inputs.

pub mod catalogue;
pub mod condition;
pub mod event;
pub mod glob;
pub mod id;
pub mod outcome;
pub mod preferences;
pub mod retry;
pub mod router;
pub mod template;

pub use condition::{Condition, ConditionError};
pub use event::{EventType, Severity};
pub use id::{DeliveryId, EventId, IdError, IntegrationId, KeyId, NotificationId, RuleId};
pub use outcome::Outcome;
pub use preferences::{Preferences, TypePreference};
pub use retry::{RetryDecision, RetryPolicy};
pub use template::{Field, RenderContext, Rendered, TemplateError, TemplateSet};
