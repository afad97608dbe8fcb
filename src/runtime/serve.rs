//! `capgate serve`: opens the store, recovers keys and today's spend,
//! starts the audit writer, the demo vendor (if enabled), the admin API and
//! one proxy worker per core, then reports the bound addresses.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::admin::{self, AdminState};
use crate::audit;
use crate::config::{Config, DemoMode, Driver};
use crate::keys::registry::KeyRegistry;
use crate::keys::{token, VaultKey};
use crate::ledger::{self, owner_of, Ledger, Ledgers};
use crate::mock;
use crate::pricing::VendorKind;
use crate::proxy::{server, CoreCtx, Shared};
use crate::store::Store;
use crate::vendors::{AuthStyle, Secret, Upstream, Vendor, Vendors};

/// A running server.
pub struct Running {
    /// Where the proxy listens.
    pub proxy_addr: SocketAddr,
    /// Where the admin API listens.
    pub admin_addr: SocketAddr,
    /// Where the demo vendor listens, if it runs.
    pub demo_addr: Option<SocketAddr>,
    /// The admin token, when it was generated just now (shown once).
    pub new_admin_token: Option<String>,
    /// Worker threads.
    pub workers: Vec<std::thread::JoinHandle<()>>,
}

/// The admin token's hash: from `CAPGATE_ADMIN_TOKEN`, else the stored
/// hash, else a new token (returned so it can be printed once).
fn admin_token(store: &Store) -> Result<([u8; 32], Option<String>), String> {
    if let Ok(t) = std::env::var("CAPGATE_ADMIN_TOKEN") {
        if t.len() < 16 {
            return Err("CAPGATE_ADMIN_TOKEN must be at least 16 characters".into());
        }
        return Ok((token::hash(&t), None));
    }
    if let Some(h) = store.meta_get("admin_token_sha256")? {
        let h: [u8; 32] = h.try_into().map_err(|_| "store: corrupt admin token hash".to_string())?;
        return Ok((h, None));
    }
    let t = token::new_admin_token().map_err(|e| format!("random source failed: {e}"))?;
    let h = token::hash(&t);
    store.meta_put("admin_token_sha256", &h)?;
    Ok((h, Some(t)))
}

/// Starts everything and returns once every listener is bound.
///
/// # Errors
/// A message for the operator when anything cannot start.
pub fn start(cfg: Config) -> Result<Running, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store = Arc::new(Store::open(&cfg.data_dir)?);
    let (admin_hash, new_admin_token) = admin_token(&store)?;

    let registry = Arc::new(KeyRegistry::new());
    for rec in store.load_keys()? {
        registry.put(VaultKey::from_record(&rec).map_err(|e| format!("key {}: {e}", rec.id))?);
    }

    let mut vendor_list: Vec<Vendor> = cfg.vendors.iter().map(|v| v.resolve()).collect();
    let any_real = vendor_list.iter().any(|v| v.credential.is_some());
    let demo_on = cfg.demo == DemoMode::On || (cfg.demo == DemoMode::Auto && !any_real);
    let mut demo_addr = None;
    if demo_on {
        let secret = token::new_admin_token().map_err(|e| format!("random source failed: {e}"))?;
        let server = mock::MockVendor::start(cfg.demo_listen, Some(secret.clone()))?;
        demo_addr = Some(server.addr);
        vendor_list.push(Vendor {
            name: "demo".into(),
            kind: VendorKind::Demo,
            upstream: Upstream::parse(&format!("http://{}", server.addr))?,
            auth: AuthStyle::Bearer,
            credential: Some(Secret::new(secret)),
            account_sid: None,
        });
        std::mem::forget(server); // lives as long as the process
    }
    let vendors = Arc::new(Vendors::new(vendor_list));
    vendors.refresh_dns();
    {
        let v = Arc::clone(&vendors);
        std::thread::Builder::new()
            .name("capgate-dns".into())
            .spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_secs(30));
                v.refresh_dns();
            })
            .map_err(|e| format!("cannot spawn DNS thread: {e}"))?;
    }

    // The writer recovers today's spend before it starts; the ledgers start
    // from the same figures.
    let audit::writer::Started { sink, handle: _writer, today: (today, spend_today) } = audit::writer::spawn(Arc::clone(&store), cfg.durability)?;
    crate::views::spawn(Arc::clone(&store), cfg.retention_days)?;

    let workers = cfg.workers;
    let (mailboxes, inboxes) = ledger::mailbox::pairs(workers);
    let mailboxes: Arc<[ledger::Mailbox]> = Arc::from(mailboxes);
    let mut recovered: Vec<Vec<(String, u64, u32)>> = vec![Vec::new(); workers];
    for (id, spent, calls) in spend_today {
        let owner = owner_of(crate::keys::owner_hash(&id), workers);
        recovered[owner].push((id, spent, calls));
    }

    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for v in &cfg.vendors {
        if let Some(path) = &v.ca_file {
            use rustls::pki_types::{pem::PemObject, CertificateDer};
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| format!("vendors.{}.ca_file: cannot read {}: {e}", v.name, path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("vendors.{}.ca_file: {e}", v.name))?;
                roots.add(cert).map_err(|e| format!("vendors.{}.ca_file: {e}", v.name))?;
            }
        }
    }
    let mut tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];

    let mut boot = [0u8; 4];
    getrandom::getrandom(&mut boot).map_err(|e| format!("random source failed: {e}"))?;
    let shared = Arc::new(Shared {
        registry: Arc::clone(&registry),
        vendors: Arc::clone(&vendors),
        audit: sink.clone(),
        durability: cfg.durability,
        prices: Arc::new(cfg.prices.compile().map_err(|e| format!("pricing: {e}"))?),
        limits: cfg.limits,
        connect_timeout: cfg.connect_timeout,
        response_timeout: cfg.response_timeout,
        idle_timeout: cfg.idle_timeout,
        free_calls_when_audit_down: cfg.free_calls_when_audit_down,
        duplicate_window_ms: cfg.duplicate_window.as_millis() as u64,
        tls: Arc::new(tls),
        boot_id: u32::from_be_bytes(boot),
    });

    let admin_listener = crate::runtime::bind_reuseport(cfg.admin_listen, 1)?.remove(0);
    let admin_addr = admin_listener.local_addr().map_err(|e| e.to_string())?;
    let listeners = crate::runtime::bind_reuseport(cfg.proxy_listen, workers)?;
    let proxy_addr = listeners.first().and_then(|l| l.local_addr().ok()).ok_or("no proxy listener")?;

    let stopped_workers: Arc<[AtomicBool]> = (0..workers).map(|_| AtomicBool::new(false)).collect();
    let state = Arc::new(AdminState {
        store: Arc::clone(&store),
        registry,
        vendors: Arc::clone(&vendors),
        mailboxes: Arc::clone(&mailboxes),
        admin_hash,
        audit: sink,
        stopped_workers: Arc::clone(&stopped_workers),
    });
    crate::runtime::spawn_runtime_thread("capgate-admin".into(), Driver::Epoll, move || admin::serve(admin_listener, state))?;

    // Test fault: this worker stops right after starting (its keys' calls
    // are refused 503 `ledger_unavailable`, `/healthz` reports it).
    let fault_stop = std::env::var("CAPGATE_FAULT_STOP_WORKER").ok().and_then(|v| v.parse::<usize>().ok());
    let mut handles = Vec::with_capacity(workers);
    for (core, ((listener, inbox), spend)) in listeners.into_iter().zip(inboxes).zip(recovered).enumerate() {
        let shared = Arc::clone(&shared);
        let mailboxes = Arc::clone(&mailboxes);
        let stopped_workers = Arc::clone(&stopped_workers);
        let driver = cfg.driver;
        handles.push(crate::runtime::spawn_runtime_thread(format!("capgate-core-{core}"), driver, move || async move {
            // Marks the worker stopped however it ends: returning, or a panic.
            let _stop_mark = StopMark(stopped_workers, core);
            let local = Rc::new(RefCell::new(Ledger::with_spend(today, spend)));
            let ledgers = Ledgers::new(core, local, mailboxes);
            monoio::spawn(inbox.serve(ledgers.clone()));
            let ctx = Rc::new(CoreCtx::new(core, shared, ledgers));
            let acks = Rc::clone(&ctx.acks);
            monoio::spawn(async move { acks.dispatch().await });
            if fault_stop == Some(core) {
                // Stops before the inbox task is first polled: dropping it
                // with the runtime still closes the inbox.
                return;
            }
            match monoio::net::TcpListener::from_std(listener) {
                Ok(l) => server::accept_loop(l, ctx).await,
                Err(e) => tracing::error!(core, error = %e, "cannot adopt listener"),
            }
        })?);
    }
    Ok(Running { proxy_addr, admin_addr, demo_addr, new_admin_token, workers: handles })
}

/// Sets a worker's stopped mark when dropped (with its core's future).
struct StopMark(Arc<[AtomicBool]>, usize);

impl Drop for StopMark {
    fn drop(&mut self) {
        if let Some(mark) = self.0.get(self.1) {
            mark.store(true, Ordering::Relaxed);
        }
        tracing::error!(core = self.1, "proxy worker stopped; calls for the keys it owns are refused (503 ledger_unavailable) and /healthz reports it");
    }
}
