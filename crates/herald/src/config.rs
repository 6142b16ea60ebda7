//! Settings, layered: built-in defaults, then `herald.toml`, then `HERALD_*`
//! variables (variables win). Parsed once into typed values; a bad value is
//! refused at start with the setting's name.

use std::{collections::BTreeMap, fmt, net::SocketAddr, path::PathBuf, time::Duration};

use herald_core::{RetryPolicy, retry::parse_duration};
use serde::Deserialize;

/// A secret setting: its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Every setting of a running Herald.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub admin_token: Option<Secret>,
    pub master_key: Option<Secret>,
    /// Base URL of this Herald as people reach it; messages link to the
    /// event only when it is set.
    pub public_url: Option<String>,
    pub retry: RetryPolicy,
    pub outbound_allow_private: bool,
    pub log: String,
    pub log_format: LogFormat,
    pub max_body_bytes: usize,
    pub attempt_timeout: Duration,
    pub lease: Duration,
    pub delivery_concurrency: usize,
    pub shutdown_grace: Duration,
    /// How often live-inbox WebSockets are pinged.
    pub live_ping: Duration,
    /// A webhook integration whose every attempt has failed for this long
    /// is disabled; `None`: never.
    pub disable_failing_after: Option<Duration>,
}

/// One row of the settings table: name, default, meaning.
pub const SETTINGS: &[(&str, &str, &str)] = &[
    ("listen", "127.0.0.1:8080", "address to serve on"),
    ("data_dir", "./herald-data", "SQLite file and key file"),
    ("database_url", "", "sqlite://… or postgres://…; empty means SQLite in the data dir"),
    ("admin_token", "", "admin bearer token; empty means generated and printed once"),
    ("master_key", "", "base64 32-byte key for secrets at rest; empty means a key file in the data dir"),
    ("public_url", "", "base URL people reach Herald at; messages link to the event when set"),
    ("retry_schedule", "5s,5m,30m,2h,5h,10h,10h", "delays between attempts"),
    ("outbound_allow_private", "true", "may integrations reach loopback and private ranges"),
    ("log", "info", "log filter (tracing EnvFilter syntax)"),
    ("log_format", "pretty", "pretty or json"),
    ("max_body_bytes", "1048576", "largest accepted request body"),
    ("attempt_timeout", "15s", "time limit of one delivery attempt"),
    ("lease", "60s", "how long a claimed delivery stays with its worker; must exceed attempt_timeout"),
    ("delivery_concurrency", "256", "deliveries in flight at once per node"),
    ("shutdown_grace", "10s", "on SIGTERM, how long in-flight deliveries may finish before they are released"),
    (
        "disable_failing_after",
        "5d",
        "a webhook integration whose every attempt has failed for this long is disabled; off to never disable",
    ),
    (
        "live_ping",
        "30s",
        "how often live-inbox WebSockets are pinged, 1s to 1h (keeps proxies from closing them); a client silent for a whole interval is disconnected",
    ),
];

/// A setting whose value cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("setting `{name}` (HERALD_{upper}): {message}", upper = name.to_uppercase())]
pub struct ConfigError {
    pub name: String,
    pub message: String,
}

fn bad(name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { name: name.to_owned(), message: message.into() }
}

/// A TOML scalar read as text, so file and environment values parse alike.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    fn into_text(self) -> String {
        match self {
            Scalar::Text(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

impl Config {
    /// Loads the file (when it exists) and the environment. Returns the
    /// config and warnings about unknown keys or variables.
    pub fn load(file: Option<&std::path::Path>) -> Result<(Self, Vec<String>), ConfigError> {
        let mut values: BTreeMap<String, String> =
            SETTINGS.iter().map(|(k, d, _)| (k.to_string(), d.to_string())).collect();
        let mut warnings = Vec::new();
        let path = file.map(PathBuf::from).unwrap_or_else(|| PathBuf::from("herald.toml"));
        if path.exists() {
            let text =
                std::fs::read_to_string(&path).map_err(|e| bad("config file", format!("{}: {e}", path.display())))?;
            let table: BTreeMap<String, Scalar> =
                toml::from_str(&text).map_err(|e| bad("config file", format!("{}: {e}", path.display())))?;
            for (k, v) in table {
                if let Some(slot) = values.get_mut(&k) {
                    *slot = v.into_text();
                } else {
                    warnings.push(format!("{}: unknown setting `{k}` ignored", path.display()));
                }
            }
        } else if file.is_some() {
            return Err(bad("config file", format!("{} does not exist", path.display())));
        }
        for (name, value) in std::env::vars() {
            let Some(key) = name.strip_prefix("HERALD_") else { continue };
            let key = key.to_lowercase();
            if let Some(slot) = values.get_mut(&key) {
                *slot = value;
            } else if !matches!(key.as_str(), "test_database_url" | "bench_database_url") {
                warnings.push(format!("unknown variable {name} ignored (a typo?)"));
            }
        }
        Self::from_values(&values).map(|c| (c, warnings))
    }

    fn from_values(v: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| v.get(k).map(String::as_str).unwrap_or_default();
        let opt = |k: &str| Some(get(k).trim()).filter(|s| !s.is_empty()).map(str::to_owned);
        let listen: SocketAddr =
            get("listen").parse().map_err(|e| bad("listen", format!("`{}`: {e}", get("listen"))))?;
        let data_dir = PathBuf::from(get("data_dir"));
        let database_url = opt("database_url").unwrap_or_else(|| herald_store::Db::sqlite_url_in(&data_dir));
        let duration = |k: &str| parse_duration(get(k).trim()).map_err(|e| bad(k, e));
        let number = |k: &str| get(k).trim().parse::<usize>().map_err(|e| bad(k, format!("`{}`: {e}", get(k))));
        let config = Config {
            listen,
            data_dir,
            database_url,
            admin_token: opt("admin_token").map(Secret),
            master_key: opt("master_key").map(Secret),
            public_url: match opt("public_url") {
                None => None,
                Some(u) => match url::Url::parse(u.trim()) {
                    Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {
                        Some(u.trim().trim_end_matches('/').to_owned())
                    }
                    _ => return Err(bad("public_url", format!("`{u}` is not an http or https URL"))),
                },
            },
            retry: RetryPolicy::parse(get("retry_schedule")).map_err(|e| bad("retry_schedule", e))?,
            outbound_allow_private: match get("outbound_allow_private").trim() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                other => return Err(bad("outbound_allow_private", format!("`{other}` is not true or false"))),
            },
            log: get("log").to_owned(),
            log_format: match get("log_format").trim() {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                other => return Err(bad("log_format", format!("`{other}` is not pretty or json"))),
            },
            max_body_bytes: number("max_body_bytes")?,
            attempt_timeout: duration("attempt_timeout")?,
            lease: duration("lease")?,
            delivery_concurrency: number("delivery_concurrency")?.max(1),
            shutdown_grace: duration("shutdown_grace")?,
            disable_failing_after: match get("disable_failing_after").trim() {
                "off" => None,
                _ => match duration("disable_failing_after")? {
                    d if d < Duration::from_secs(1) => {
                        return Err(bad(
                            "disable_failing_after",
                            format!("{d:?} is under a second (`off` never disables)"),
                        ));
                    }
                    d => Some(d),
                },
            },
            live_ping: match duration("live_ping")? {
                d if d < Duration::from_secs(1) || d > Duration::from_secs(3600) => {
                    return Err(bad("live_ping", format!("{d:?} is not between 1 second and 1 hour")));
                }
                d => d,
            },
        };
        // A lease that can run out while its attempt is still going lets a
        // second worker send the same delivery at the same time.
        if config.lease <= config.attempt_timeout {
            return Err(bad(
                "lease",
                format!(
                    "{:?} must be longer than attempt_timeout ({:?}), or a slow attempt's delivery is claimed again while it runs",
                    config.lease, config.attempt_timeout
                ),
            ));
        }
        Ok(config)
    }

    /// A commented `herald.toml` with every setting at its default.
    pub fn default_file() -> String {
        let mut out =
            String::from("# herald.toml: every setting at its default. HERALD_<NAME> variables override these.\n\n");
        for (k, d, meaning) in SETTINGS {
            let value = if *k == "outbound_allow_private" || k.ends_with("bytes") || *k == "delivery_concurrency" {
                d.to_string()
            } else {
                format!("\"{d}\"")
            };
            out.push_str(&format!("# {meaning}\n# {k} = {value}\n\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> BTreeMap<String, String> {
        SETTINGS.iter().map(|(k, d, _)| (k.to_string(), d.to_string())).collect()
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::from_values(&defaults()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert!(c.database_url.starts_with("sqlite://"));
        assert_eq!(c.public_url, None);
        assert_eq!(c.max_body_bytes, 1 << 20);
        assert!(c.outbound_allow_private);
    }

    #[test]
    fn a_public_url_loses_its_trailing_slash() {
        let mut v = defaults();
        v.insert("public_url".into(), " https://herald.example.com/ ".into());
        assert_eq!(Config::from_values(&v).unwrap().public_url.as_deref(), Some("https://herald.example.com"));
    }

    #[test]
    fn lease_not_longer_than_timeout_is_refused() {
        let mut v = defaults();
        v.insert("lease".into(), "15s".into());
        let err = Config::from_values(&v).unwrap_err();
        assert_eq!(err.name, "lease");
        assert!(err.to_string().contains("HERALD_LEASE"));
    }

    #[test]
    fn bad_values_name_the_setting() {
        for (k, val) in [
            ("retry_schedule", "5q"),
            ("log_format", "xml"),
            ("listen", "nope"),
            ("outbound_allow_private", "maybe"),
            ("public_url", "herald.example.com"),
            ("public_url", "ftp://herald.example.com"),
            ("live_ping", "0s"),
            ("live_ping", "500ms"),
            ("live_ping", "2h"),
            ("disable_failing_after", "0s"),
            ("disable_failing_after", "never"),
        ] {
            let mut v = defaults();
            v.insert(k.into(), val.into());
            assert_eq!(Config::from_values(&v).unwrap_err().name, k);
        }
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "********");
        let mut v = defaults();
        v.insert("admin_token".into(), "hunter2".into());
        let c = Config::from_values(&v).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn default_file_parses_back() {
        let text = Config::default_file();
        let uncommented: String = text
            .lines()
            .filter(|l| l.starts_with("# ") && l.contains(" = "))
            .map(|l| format!("{}\n", &l[2..]))
            .collect();
        let table: BTreeMap<String, Scalar> = toml::from_str(&uncommented).unwrap();
        assert_eq!(table.len(), SETTINGS.len());
    }
}
