//! The vendor table: where each vendor's API lives, how its real credential
//! is presented, and the credential itself (read from the environment, never
//! logged). Rules are data: adding a vendor is one entry in
//! [`crate::config`]'s defaults.

use std::collections::HashMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use base64::Engine;
use dashmap::DashMap;

use crate::pricing::VendorKind;

/// How the real credential is sent upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthStyle {
    /// `Authorization: Bearer <secret>` (Stripe, OpenAI, Resend, demo).
    Bearer,
    /// `x-api-key: <secret>` (Anthropic).
    XApiKey,
    /// `Authorization: Basic base64(account_sid:secret)` (Twilio).
    Basic,
}

/// A secret that never prints itself.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    /// The value, for building the upstream header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where a vendor's API is.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// TLS (https) or plain http (loopback test upstreams only).
    pub tls: bool,
    /// Host name (also the TLS server name and `Host` header).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path prefix on the upstream, no trailing slash (usually empty).
    pub base_path: String,
    /// `host[:port]`, worked out once (it goes in every request).
    authority: String,
}

impl Upstream {
    /// Parses `https://api.stripe.com` or `http://127.0.0.1:9000/base`.
    ///
    /// # Errors
    /// A message naming what is wrong with the URL.
    pub fn parse(url: &str) -> Result<Upstream, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("invalid upstream URL {url:?}: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("upstream URL {url:?} must start with https:// (or http:// for loopback)")),
        };
        let host = uri.host().ok_or_else(|| format!("upstream URL {url:?} has no host"))?.trim_matches(['[', ']']).to_string();
        if !tls && !is_loopback(&host) {
            return Err(format!("upstream URL {url:?}: plain http is only allowed to loopback addresses"));
        }
        if uri.query().is_some() {
            return Err(format!("upstream URL {url:?} must not have a query"));
        }
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let base_path = uri.path().trim_end_matches('/').to_string();
        let bracketed = if host.contains(':') { format!("[{host}]") } else { host.clone() };
        let authority = if port == if tls { 443 } else { 80 } { bracketed } else { format!("{bracketed}:{port}") };
        Ok(Upstream { tls, host, port, base_path, authority })
    }

    /// `host[:port]` for the `Host` header.
    pub fn authority(&self) -> &str {
        &self.authority
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// One configured vendor.
#[derive(Debug)]
pub struct Vendor {
    /// Route name: `/<name>/...`.
    pub name: String,
    /// Which pricing rules apply.
    pub kind: VendorKind,
    /// Where it lives.
    pub upstream: Upstream,
    /// How the credential is sent.
    pub auth: AuthStyle,
    /// The real credential, if configured.
    pub credential: Option<Secret>,
    /// Twilio account SID (replaces the one in request paths).
    pub account_sid: Option<String>,
}

impl Vendor {
    /// Appends the upstream auth header line (`name: value\r\n`) when a
    /// credential is set, straight into the request being built.
    pub fn push_auth_header(&self, out: &mut Vec<u8>) {
        let Some(secret) = self.credential.as_ref().map(Secret::expose) else { return };
        match self.auth {
            AuthStyle::Bearer => {
                out.extend_from_slice(b"authorization: Bearer ");
                out.extend_from_slice(secret.as_bytes());
            }
            AuthStyle::XApiKey => {
                out.extend_from_slice(b"x-api-key: ");
                out.extend_from_slice(secret.as_bytes());
            }
            AuthStyle::Basic => {
                let user = self.account_sid.as_deref().unwrap_or("");
                out.extend_from_slice(b"authorization: Basic ");
                out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}")).as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// All vendors plus their resolved upstream addresses. DNS is resolved
/// off the cores (at start and by [`Vendors::refresh_dns`]).
#[derive(Debug, Default)]
pub struct Vendors {
    by_name: HashMap<String, Arc<Vendor>>,
    addrs: DashMap<String, Arc<Vec<SocketAddr>>>,
}

impl Vendors {
    /// Builds the table.
    pub fn new(list: Vec<Vendor>) -> Vendors {
        let by_name = list.into_iter().map(|v| (v.name.clone(), Arc::new(v))).collect();
        Vendors { by_name, addrs: DashMap::new() }
    }

    /// A vendor by route name.
    pub fn get(&self, name: &str) -> Option<&Arc<Vendor>> {
        self.by_name.get(name)
    }

    /// Vendor names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.by_name.keys().cloned().collect();
        v.sort();
        v
    }

    /// Resolved addresses of a vendor's upstream (empty until resolved).
    pub fn addrs(&self, name: &str) -> Option<Arc<Vec<SocketAddr>>> {
        self.addrs.get(name).map(|a| Arc::clone(&a))
    }

    /// Resolves every upstream host (blocking; call from a control thread).
    pub fn refresh_dns(&self) {
        for v in self.by_name.values() {
            match (v.upstream.host.as_str(), v.upstream.port).to_socket_addrs() {
                Ok(a) => {
                    let list: Vec<SocketAddr> = a.collect();
                    if !list.is_empty() {
                        self.addrs.insert(v.name.clone(), Arc::new(list));
                    }
                }
                Err(e) => tracing::debug!(vendor = %v.name, host = %v.upstream.host, error = %e, "upstream DNS lookup failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls() {
        let u = Upstream::parse("https://api.stripe.com").unwrap();
        assert!(u.tls && u.port == 443 && u.base_path.is_empty());
        assert_eq!(u.authority(), "api.stripe.com");
        let u = Upstream::parse("http://127.0.0.1:9000/base/").unwrap();
        assert_eq!((u.port, u.base_path.as_str(), u.authority()), (9000, "/base", "127.0.0.1:9000"));
        assert!(Upstream::parse("http://example.com").is_err());
        assert!(Upstream::parse("ftp://x").is_err());
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("sk_live_123".into());
        assert!(!format!("{s:?}").contains("sk_live"));
    }
}
