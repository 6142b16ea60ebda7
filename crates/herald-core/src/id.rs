//! Prefixed string ids (`evt_…`, `dlv_…`): a UUIDv7 in lower-case hex behind a
//! type prefix, so ids sort by creation time and say what they name.

use std::{
    fmt,
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};

use rand::RngCore;
use serde::{Deserialize, Serialize};

/// A UUIDv7 that sorts after every one made before it in this process: the
/// millisecond timestamp, then a counter that starts at a random value each
/// millisecond, then random bits. Random bits come from the thread's RNG;
/// `Uuid::now_v7` asks the kernel for them on every call, which showed up as
/// 2 % of ingest CPU.
fn next_v7() -> uuid::Uuid {
    static LAST: Mutex<(u64, u64)> = Mutex::new((0, 0));
    let mut rng = rand::rng();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default();
    let (ms, counter) = {
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        if now > last.0 {
            // Start low in the 48-bit counter space so it never overflows.
            *last = (now, u64::from(rng.next_u32()));
        } else {
            last.1 += 1;
        }
        *last
    };
    let mut bytes = [0u8; 10];
    bytes[..6].copy_from_slice(&counter.to_be_bytes()[2..]);
    rng.fill_bytes(&mut bytes[6..]);
    uuid::Builder::from_unix_timestamp_millis(ms, &bytes).into_uuid()
}

/// An id string that does not have the expected prefix and shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {kind} id (expected `{prefix}_` followed by 32 hex digits)")]
pub struct IdError {
    pub kind: &'static str,
    pub prefix: &'static str,
    pub value: String,
}

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(format!("{}_{}", $prefix, next_v7().simple()))
            }

            /// Parses an id received from outside, checking prefix and shape.
            pub fn parse(value: &str) -> Result<Self, IdError> {
                let ok = value
                    .strip_prefix(concat!($prefix, "_"))
                    .is_some_and(|rest| rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
                if ok {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(IdError { kind: $kind, prefix: $prefix, value: value.chars().take(80).collect() })
                }
            }

            /// Wraps an id read back from storage, where it was valid when written.
            pub fn from_stored(value: String) -> Self {
                Self(value)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

define_id!(
    /// Identifies an accepted event.
    EventId, "evt", "event"
);
define_id!(
    /// Identifies an integration (a configured destination).
    IntegrationId, "int", "integration"
);
define_id!(
    /// Identifies a routing rule.
    RuleId, "rul", "rule"
);
define_id!(
    /// Identifies a delivery; also sent as `webhook-id`, stable across retries.
    DeliveryId, "dlv", "delivery"
);
define_id!(
    /// Identifies a tenant API key (not the key itself).
    KeyId, "key", "API key"
);
define_id!(
    /// Identifies an inbox item (a notification in a person's in-app inbox).
    NotificationId, "ntf", "notification"
);
define_id!(
    /// Identifies a stored Web Push subscription.
    PushSubscriptionId, "psub", "push subscription"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_parse_and_sort_by_creation() {
        let a = EventId::new();
        let b = EventId::new();
        assert!(a < b, "{a} should sort before {b}");
        assert_eq!(EventId::parse(a.as_str()).unwrap(), a);
    }

    #[test]
    fn ids_made_in_a_burst_stay_ordered() {
        let ids: Vec<EventId> = (0..10_000).map(|_| EventId::new()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let u = uuid::Uuid::parse_str(&ids[0].as_str()[4..]).unwrap();
        assert_eq!(u.get_version_num(), 7);
    }

    #[test]
    fn wrong_prefix_or_shape_is_refused() {
        let d = DeliveryId::new();
        assert!(EventId::parse(d.as_str()).is_err());
        assert!(EventId::parse("evt_123").is_err());
        assert!(EventId::parse("evt_0192ABCDEF0123456789ABCDEF012345").is_err());
        let err = EventId::parse("nope").unwrap_err();
        assert!(err.to_string().contains("evt_"));
    }
}
