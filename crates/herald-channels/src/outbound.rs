//! The outbound address policy: which addresses Herald may send to, enforced
//! both on IP-literal URLs and inside the HTTP client's resolver.
//!
//! A resolver filter alone is not enough: the connector never asks the
//! resolver about an IP literal, so channels check those with
//! [`AddressPolicy::check_url`]. For names, [`PolicyResolver`] resolves and
//! filters in one step and reqwest connects only to what it returned, which
//! leaves no gap for DNS rebinding between the check and the connect.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// How long to wait for a TCP (and TLS) connection before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which destinations outbound requests may reach.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Allow private and loopback addresses (`HERALD_OUTBOUND_ALLOW_PRIVATE`);
    /// link-local, multicast and the like stay refused regardless.
    pub allow_private: bool,
}

/// Why an outbound destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// An address no notification should ever be sent to.
    #[error("{addr} is {why}; outbound requests to it are always refused")]
    Always { addr: IpAddr, why: Why },
    /// A private or loopback address while private addresses are not allowed.
    #[error(
        "{addr} is {why}; outbound requests to private addresses are refused \
         (HERALD_OUTBOUND_ALLOW_PRIVATE is off)"
    )]
    Private { addr: IpAddr, why: Why },
    /// A URL scheme other than http or https.
    #[error("URL scheme `{scheme}` is not allowed; only http and https are")]
    Scheme { scheme: String },
    /// A URL without a host.
    #[error("URL has no host")]
    NoHost,
    /// A name whose every address was refused.
    #[error("{host} resolves only to refused addresses: {first}")]
    Host { host: String, first: Box<Refused> },
}

/// What kind of address was refused, and through which wrapping it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Why {
    /// The range the address, or the IPv4 address it carries, falls in.
    pub class: Class,
    /// Set when the address was an IPv6 form carrying this IPv4 address.
    pub wrapped: Option<(Wrapping, Ipv4Addr)>,
}

/// A special-purpose address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 169.254.0.0/16, where clouds serve instance metadata and credentials.
    CloudMetadata,
    /// fe80::/10.
    LinkLocal,
    /// 0.0.0.0/8 ("this network").
    ThisNetwork,
    Unspecified,
    Multicast,
    Broadcast,
    Loopback,
    /// 10/8, 172.16/12, 192.168/16.
    Private,
    /// fc00::/7.
    UniqueLocal,
    /// 100.64.0.0/10, carrier-grade NAT.
    SharedAddressSpace,
}

/// An IPv6 form that carries an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrapping {
    /// `::ffff:a.b.c.d`.
    Mapped,
    /// NAT64 `64:ff9b::/96`.
    Nat64,
    /// 6to4 `2002::/16`.
    SixToFour,
}

impl Class {
    /// Whether the range is refused even when private addresses are allowed.
    pub fn always_refused(self) -> bool {
        !matches!(self, Class::Loopback | Class::Private | Class::UniqueLocal | Class::SharedAddressSpace)
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::CloudMetadata => "link-local (cloud metadata)",
            Class::LinkLocal => "link-local",
            Class::ThisNetwork => "in 0.0.0.0/8 (this network)",
            Class::Unspecified => "unspecified",
            Class::Multicast => "multicast",
            Class::Broadcast => "the broadcast address",
            Class::Loopback => "loopback",
            Class::Private => "private",
            Class::UniqueLocal => "unique-local (fc00::/7)",
            Class::SharedAddressSpace => "shared address space (100.64.0.0/10)",
        })
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.wrapped {
            None => write!(f, "{}", self.class),
            Some((wrapping, v4)) => {
                let how = match wrapping {
                    Wrapping::Mapped => "IPv4-mapped",
                    Wrapping::Nat64 => "NAT64 (64:ff9b::/96) wrapping",
                    Wrapping::SixToFour => "6to4 (2002::/16) wrapping",
                };
                write!(f, "{how} {v4}, which is {}", self.class)
            }
        }
    }
}

impl AddressPolicy {
    /// Refuses an address this policy does not allow.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refused> {
        match classify(ip) {
            None => Ok(()),
            Some(why) if why.class.always_refused() => Err(Refused::Always { addr: ip, why }),
            Some(_) if self.allow_private => Ok(()),
            Some(why) => Err(Refused::Private { addr: ip, why }),
        }
    }

    /// Refuses a non-HTTP URL or one whose host is a refused IP literal;
    /// names are left to [`PolicyResolver`].
    pub fn check_url(&self, url: &Url) -> Result<(), Refused> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused::Scheme { scheme: url.scheme().to_owned() });
        }
        match url.host() {
            None => Err(Refused::NoHost),
            Some(Host::Domain(_)) => Ok(()),
            Some(Host::Ipv4(v4)) => self.check_ip(IpAddr::V4(v4)),
            Some(Host::Ipv6(v6)) => self.check_ip(IpAddr::V6(v6)),
        }
    }
}

/// The special range an address falls in, if any, looking through the IPv6
/// forms that carry an IPv4 address (the OS or a gateway unwraps them).
fn classify(ip: IpAddr) -> Option<Why> {
    let direct = |class| Why { class, wrapped: None };
    match ip {
        IpAddr::V4(v4) => classify_v4(v4).map(direct),
        IpAddr::V6(v6) => {
            let wrapped = if let Some(v4) = v6.to_ipv4_mapped() {
                Some((Wrapping::Mapped, v4))
            } else {
                let s = v6.segments();
                let o = v6.octets();
                if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                    Some((Wrapping::Nat64, Ipv4Addr::new(o[12], o[13], o[14], o[15])))
                } else if s[0] == 0x2002 {
                    Some((Wrapping::SixToFour, Ipv4Addr::new(o[2], o[3], o[4], o[5])))
                } else {
                    None
                }
            };
            match wrapped {
                Some((wrapping, v4)) => classify_v4(v4).map(|class| Why { class, wrapped: Some((wrapping, v4)) }),
                None => classify_v6(v6).map(direct),
            }
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Class> {
    let [a, b, ..] = ip.octets();
    Some(if ip.is_unspecified() {
        Class::Unspecified
    } else if a == 0 {
        Class::ThisNetwork
    } else if ip.is_broadcast() {
        Class::Broadcast
    } else if ip.is_link_local() {
        Class::CloudMetadata
    } else if ip.is_multicast() {
        Class::Multicast
    } else if ip.is_loopback() {
        Class::Loopback
    } else if ip.is_private() {
        Class::Private
    } else if a == 100 && (b & 0xc0) == 64 {
        Class::SharedAddressSpace
    } else {
        return None;
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<Class> {
    let first = ip.segments()[0];
    Some(if ip.is_unspecified() {
        Class::Unspecified
    } else if ip.is_loopback() {
        Class::Loopback
    } else if ip.is_multicast() {
        Class::Multicast
    } else if (first & 0xffc0) == 0xfe80 {
        Class::LinkLocal
    } else if (first & 0xfe00) == 0xfc00 {
        Class::UniqueLocal
    } else {
        return None;
    })
}

/// A reqwest resolver that resolves with the system resolver and keeps only
/// the addresses the policy allows.
#[derive(Clone, Copy, Debug)]
pub struct PolicyResolver {
    policy: AddressPolicy,
}

impl PolicyResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: AddressPolicy) -> Self {
        Self { policy }
    }

    /// Resolves `host` and keeps the allowed addresses, with port 0 (reqwest
    /// puts the URL's port in).
    pub async fn resolve_allowed(
        &self,
        host: &str,
    ) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let mut first_refusal = None;
        let allowed: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await?
            .filter(|addr| match self.policy.check_ip(addr.ip()) {
                Ok(()) => true,
                Err(refused) => {
                    first_refusal.get_or_insert(refused);
                    false
                }
            })
            .collect();
        if !allowed.is_empty() {
            return Ok(allowed);
        }
        // The refusal itself is the error (not a string of it), so that
        // `http::send_and_classify` can find it in the source chain and call
        // the attempt a permanent failure.
        match first_refusal {
            Some(first) => Err(Box::new(Refused::Host { host: host.to_owned(), first: Box::new(first) })),
            None => Err(format!("{host} resolved to no address").into()),
        }
    }
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = *self;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolver.resolve_allowed(&host).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Builds the HTTP client every HTTP channel shares: rustls, no redirects,
/// no system proxy, and `policy` enforced in its resolver.
pub fn build_http_client(policy: AddressPolicy) -> reqwest::Client {
    crate::install_crypto_provider();
    reqwest::Client::builder()
        .tls_backend_rustls()
        // A redirect could lead anywhere, including past the policy; the
        // Standard Webhooks spec also calls a 3xx a failure.
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would do the resolving, out of the resolver's reach.
        .no_proxy()
        .dns_resolver(Arc::new(PolicyResolver::new(policy)))
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("Herald/", env!("CARGO_PKG_VERSION")))
        .build()
        // Only a broken TLS backend makes this fail, and the provider was
        // installed just above: that is a bug, not a runtime condition.
        .expect("the HTTP client configuration is static and valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: AddressPolicy = AddressPolicy { allow_private: false };
    const LENIENT: AddressPolicy = AddressPolicy { allow_private: true };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn always_refused_whatever_the_policy() {
        for addr in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "febf::1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "::",
            "ff02::1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::e000:1",
            "2002:a9fe:a9fe::1",
            "2002:0:1::",
        ] {
            for policy in [STRICT, LENIENT] {
                let err = policy.check_ip(ip(addr)).unwrap_err();
                assert!(matches!(err, Refused::Always { .. }), "{addr}: {err:?}");
            }
        }
    }

    #[test]
    fn private_follows_allow_private() {
        for addr in [
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "100.64.0.1",
            "100.127.255.255",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "2002:c0a8:101::1",
        ] {
            let err = STRICT.check_ip(ip(addr)).unwrap_err();
            assert!(matches!(err, Refused::Private { .. }), "{addr}: {err:?}");
            assert_eq!(LENIENT.check_ip(ip(addr)), Ok(()), "{addr}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for addr in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "169.255.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(STRICT.check_ip(ip(addr)), Ok(()), "{addr}");
        }
    }

    #[test]
    fn messages_name_the_address_and_the_reason() {
        let err = LENIENT.check_ip(ip("169.254.169.254")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "169.254.169.254 is link-local (cloud metadata); outbound requests to it are always refused"
        );
        let err = STRICT.check_ip(ip("64:ff9b::a9fe:a9fe")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "64:ff9b::a9fe:a9fe is NAT64 (64:ff9b::/96) wrapping 169.254.169.254, which is link-local \
             (cloud metadata); outbound requests to it are always refused"
        );
        let err = STRICT.check_ip(ip("10.1.2.3")).unwrap_err();
        assert!(err.to_string().starts_with("10.1.2.3 is private; "), "{err}");
    }

    #[test]
    fn tricky_url_spellings() {
        // The url crate normalises these IPv4 spellings to 127.0.0.1.
        for spelling in ["http://2130706433", "http://0x7f.1", "http://0177.0.0.1/", "http://[::ffff:127.0.0.1]"] {
            let err = STRICT.check_url(&url(spelling)).unwrap_err();
            assert!(matches!(err, Refused::Private { .. }), "{spelling}: {err:?}");
            assert_eq!(LENIENT.check_url(&url(spelling)), Ok(()), "{spelling}");
        }
        for spelling in ["http://[64:ff9b::a9fe:a9fe]", "http://169.254.169.254/", "https://[fe80::1]:8443/x"] {
            let err = LENIENT.check_url(&url(spelling)).unwrap_err();
            assert!(matches!(err, Refused::Always { .. }), "{spelling}: {err:?}");
        }
    }

    #[test]
    fn urls_need_http_and_a_host() {
        assert!(matches!(STRICT.check_url(&url("ftp://example.com/")), Err(Refused::Scheme { .. })));
        assert!(matches!(STRICT.check_url(&url("file:///etc/passwd")), Err(Refused::Scheme { .. })));
        assert_eq!(STRICT.check_url(&url("https://example.com/hook")), Ok(()));
        assert_eq!(STRICT.check_url(&url("http://8.8.8.8:8080/")), Ok(()));
    }

    #[tokio::test]
    async fn resolver_drops_refused_addresses() {
        let err = PolicyResolver::new(STRICT).resolve_allowed("localhost").await.unwrap_err();
        let refused = err.downcast_ref::<Refused>().expect("a Refused error");
        assert!(matches!(refused, Refused::Host { host, .. } if host == "localhost"), "{refused:?}");
        assert!(err.to_string().starts_with("localhost resolves only to refused addresses: "), "{err}");

        let addrs = PolicyResolver::new(LENIENT).resolve_allowed("localhost").await.unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    #[test]
    fn client_builds() {
        let _ = build_http_client(STRICT);
    }
}
