//! Configuration: the embedded default TOML (`src/default.toml`), an optional
//! user file merged over it key by key, and command-line overrides, turned
//! once into runtime types (addresses, durations, vendors with credentials
//! read from the environment). Every problem is reported with its key name.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::audit::Durability;
use crate::http1::Limits;
use crate::pricing::{PriceTable, VendorKind};
use crate::vendors::{AuthStyle, Secret, Upstream, Vendor};

/// The embedded default configuration.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    proxy: ProxySection,
    admin: AdminSection,
    storage: StorageSection,
    demo: DemoSection,
    #[serde(default)]
    vendors: BTreeMap<String, VendorSection>,
    #[serde(default)]
    pricing: PriceTable,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxySection {
    listen: String,
    workers: usize,
    driver: String,
    max_head_bytes: usize,
    max_body_bytes: usize,
    connect_timeout_ms: u64,
    response_timeout_ms: u64,
    idle_timeout_ms: u64,
    duplicate_window: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminSection {
    listen: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageSection {
    data_dir: PathBuf,
    durability: String,
    interval_ms: u64,
    free_calls_when_audit_down: bool,
    retention_days: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoSection {
    enabled: toml::Value,
    listen: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VendorSection {
    kind: Option<String>,
    upstream: Option<String>,
    auth: Option<AuthStyle>,
    credential_env: Option<String>,
    account_sid_env: Option<String>,
    ca_file: Option<PathBuf>,
}

/// Which monoio driver the workers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// io_uring when the kernel allows it, epoll otherwise.
    Auto,
    /// io_uring only.
    IoUring,
    /// epoll only.
    Epoll,
}

/// Whether the demo vendor runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoMode {
    /// When no real credential is configured.
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

/// A vendor as configured, before its credential is read.
#[derive(Debug, Clone)]
pub struct VendorSpec {
    /// Route name.
    pub name: String,
    /// Pricing kind.
    pub kind: VendorKind,
    /// Upstream.
    pub upstream: Upstream,
    /// Auth style.
    pub auth: AuthStyle,
    /// Env var holding the secret.
    pub credential_env: Option<String>,
    /// Env var holding the Twilio account SID.
    pub account_sid_env: Option<String>,
    /// Extra PEM root certificates to trust for this upstream (private CAs).
    pub ca_file: Option<PathBuf>,
}

impl VendorSpec {
    /// Reads the credential from the environment.
    pub fn resolve(&self) -> Vendor {
        let env = |name: &Option<String>| name.as_ref().and_then(|n| std::env::var(n).ok()).filter(|v| !v.is_empty());
        Vendor {
            name: self.name.clone(),
            kind: self.kind,
            upstream: self.upstream.clone(),
            auth: self.auth,
            credential: env(&self.credential_env).map(Secret::new),
            account_sid: env(&self.account_sid_env),
        }
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Proxy listen address.
    pub proxy_listen: SocketAddr,
    /// Admin listen address.
    pub admin_listen: SocketAddr,
    /// Worker cores.
    pub workers: usize,
    /// monoio driver.
    pub driver: Driver,
    /// Request limits.
    pub limits: Limits,
    /// Upstream connect timeout.
    pub connect_timeout: Duration,
    /// Upstream answer timeout.
    pub response_timeout: Duration,
    /// Client idle timeout.
    pub idle_timeout: Duration,
    /// Duplicate-charge guard window (zero = off).
    pub duplicate_window: Duration,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Audit durability.
    pub durability: Durability,
    /// Forward zero-cost calls while the audit log is unwritable.
    pub free_calls_when_audit_down: bool,
    /// Days of audit events kept.
    pub retention_days: u32,
    /// Demo vendor mode.
    pub demo: DemoMode,
    /// Demo vendor listen address.
    pub demo_listen: SocketAddr,
    /// Vendors.
    pub vendors: Vec<VendorSpec>,
    /// Prices (defaults merged with `[pricing]`).
    pub prices: PriceTable,
}

/// Command-line overrides.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--proxy-listen`.
    pub proxy_listen: Option<String>,
    /// `--admin-listen`.
    pub admin_listen: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--workers`.
    pub workers: Option<usize>,
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn addr(key: &str, s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|e| format!("{key}: {s:?} is not an address like 127.0.0.1:8080 ({e})"))
}

impl Config {
    /// Loads the defaults, merges `user_toml` (if any) and the overrides.
    ///
    /// # Errors
    /// A message naming the bad key.
    pub fn load(user_toml: Option<&str>, ov: &Overrides) -> Result<Config, String> {
        let mut value: toml::Value = toml::from_str(DEFAULT_TOML).map_err(|e| format!("embedded default config: {e}"))?;
        if let Some(text) = user_toml {
            let user: toml::Value = toml::from_str(text).map_err(|e| format!("config: {e}"))?;
            merge(&mut value, user);
        }
        let file: FileConfig = value.try_into().map_err(|e| format!("config: {e}"))?;
        Self::resolve(file, ov)
    }

    fn resolve(f: FileConfig, ov: &Overrides) -> Result<Config, String> {
        let workers = match ov.workers.unwrap_or(f.proxy.workers) {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n.min(256),
        };
        let driver = match f.proxy.driver.as_str() {
            "auto" => Driver::Auto,
            "iouring" | "io_uring" => Driver::IoUring,
            "epoll" | "legacy" => Driver::Epoll,
            other => return Err(format!("proxy.driver: {other:?} is not one of \"auto\", \"iouring\", \"epoll\"")),
        };
        let durability = match f.storage.durability.as_str() {
            "sync" => Durability::Sync,
            "interval" if f.storage.interval_ms > 0 => Durability::Interval(Duration::from_millis(f.storage.interval_ms)),
            "interval" => return Err("storage.interval_ms must be above 0".into()),
            other => return Err(format!("storage.durability: {other:?} is not \"sync\" or \"interval\"")),
        };
        let demo = match &f.demo.enabled {
            toml::Value::Boolean(true) => DemoMode::On,
            toml::Value::Boolean(false) => DemoMode::Off,
            toml::Value::String(s) if s == "auto" => DemoMode::Auto,
            other => return Err(format!("demo.enabled: {other} is not true, false or \"auto\"")),
        };
        let mut vendors = Vec::new();
        for (name, v) in f.vendors {
            let key = |k: &str| format!("vendors.{name}.{k}");
            if name.is_empty() || name == "demo" || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
                return Err(format!("vendors.{name}: vendor names are lower-case letters, digits, '-' or '_' (and \"demo\" is reserved)"));
            }
            let kind_name = v.kind.clone().unwrap_or_else(|| name.clone());
            let kind = VendorKind::from_name(&kind_name).ok_or_else(|| format!("{}: unknown kind {kind_name:?}", key("kind")))?;
            let upstream = Upstream::parse(v.upstream.as_deref().ok_or_else(|| format!("{} is required", key("upstream")))?).map_err(|e| format!("{}: {e}", key("upstream")))?;
            vendors.push(VendorSpec {
                name,
                kind,
                upstream,
                auth: v.auth.unwrap_or(AuthStyle::Bearer),
                credential_env: v.credential_env,
                account_sid_env: v.account_sid_env,
                ca_file: v.ca_file,
            });
        }
        let prices = f.pricing;
        prices.compile().map_err(|e| format!("pricing: {e}"))?;
        let limits = crate::http1::Limits {
            max_head_bytes: f.proxy.max_head_bytes.clamp(1024, 1 << 20),
            max_headers: 64,
            max_body_bytes: f.proxy.max_body_bytes.clamp(1024, 64 << 20),
        };
        Ok(Config {
            proxy_listen: addr("proxy.listen", ov.proxy_listen.as_deref().unwrap_or(&f.proxy.listen))?,
            admin_listen: addr("admin.listen", ov.admin_listen.as_deref().unwrap_or(&f.admin.listen))?,
            workers,
            driver,
            limits,
            connect_timeout: Duration::from_millis(f.proxy.connect_timeout_ms.max(1)),
            response_timeout: Duration::from_millis(f.proxy.response_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(f.proxy.idle_timeout_ms.max(1)),
            duplicate_window: match f.proxy.duplicate_window.trim() {
                "0" | "off" => Duration::ZERO,
                s => humantime::parse_duration(s).map_err(|e| format!("proxy.duplicate_window: {s:?} is not a duration like \"10m\" ({e})"))?,
            },
            data_dir: ov.data_dir.clone().unwrap_or(f.storage.data_dir),
            durability,
            free_calls_when_audit_down: f.storage.free_calls_when_audit_down,
            retention_days: f.storage.retention_days.max(1),
            demo,
            demo_listen: addr("demo.listen", &f.demo.listen)?,
            vendors,
            prices,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_loads() {
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(c.proxy_listen, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
        assert_eq!(c.admin_listen, "127.0.0.1:8081".parse::<SocketAddr>().unwrap());
        assert_eq!(c.durability, Durability::Sync);
        assert_eq!(c.vendors.len(), 5);
    }

    #[test]
    fn user_file_merges_and_errors_name_keys() {
        let c = Config::load(Some("[proxy]\nworkers = 3\n[vendors.stripe]\nupstream = \"http://127.0.0.1:9999\"\n"), &Overrides::default()).unwrap();
        assert_eq!(c.workers, 3);
        let s = c.vendors.iter().find(|v| v.name == "stripe").unwrap();
        assert_eq!(s.upstream.port, 9999);
        assert_eq!(s.credential_env.as_deref(), Some("STRIPE_SECRET_KEY"));
        let e = Config::load(Some("[proxy]\ndriver = \"fast\"\n"), &Overrides::default()).unwrap_err();
        assert!(e.contains("proxy.driver"), "{e}");
        let e = Config::load(Some("[proxy]\nlisten = \"nope\"\n"), &Overrides::default()).unwrap_err();
        assert!(e.contains("proxy.listen"), "{e}");
        let e = Config::load(Some("[proxi]\n"), &Overrides::default()).unwrap_err();
        assert!(e.contains("proxi"), "{e}");
    }
}
