//! The `capgate` command line: `serve` runs the proxy and admin API.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use capgate::config::{Config, Overrides};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "capgate", version, about = "Capped, scoped, revocable vault keys for AI agents calling paid APIs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy and the admin API (embedded default config unless --config).
    Serve {
        /// TOML file merged over the embedded defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Proxy listen address (overrides proxy.listen).
        #[arg(long)]
        proxy_listen: Option<String>,
        /// Admin listen address (overrides admin.listen).
        #[arg(long)]
        admin_listen: Option<String>,
        /// Data directory (overrides storage.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Worker cores (overrides proxy.workers; 0 = all cores).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Print the embedded default configuration.
    DefaultConfig,
    /// Capacity-planning load harness: capgate vs direct vs nginx, side by side.
    Bench {
        /// Target a running capgate proxy instead of starting one.
        #[arg(long)]
        target: Option<std::net::SocketAddr>,
        /// Admin address of the targeted capgate (to issue keys; needs CAPGATE_ADMIN_TOKEN).
        #[arg(long)]
        target_admin: Option<std::net::SocketAddr>,
        /// Vault keys to issue.
        #[arg(long, default_value_t = 1000)]
        keys: usize,
        /// Tenants the keys are spread over.
        #[arg(long, default_value_t = 10)]
        tenants: usize,
        /// Keep-alive connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Measured seconds per target.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Zipf exponent of the key distribution (0 = uniform).
        #[arg(long, default_value_t = 1.0)]
        zipf: f64,
        /// Mix weights "charges,gets,llm,refused".
        #[arg(long, default_value = "100,0,0,0")]
        mix: String,
        /// Pace to this many requests/s in total (default: as fast as possible).
        #[arg(long)]
        rate: Option<f64>,
        /// capgate (and nginx) workers; 0 = all cores.
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// Per-core figures: proxy pinned to core 0, mock and generator to the rest.
        #[arg(long)]
        pin: bool,
        /// Audit durability of the started capgate: sync or interval.
        #[arg(long, default_value = "sync")]
        durability: String,
        /// monoio driver of the started capgate: epoll (serve's default), iouring or auto.
        #[arg(long, default_value = "epoll")]
        driver: String,
        /// Skip the nginx comparison.
        #[arg(long)]
        no_nginx: bool,
        /// Generator threads (0 = the cores not given to the proxy).
        #[arg(long, default_value_t = 0)]
        generator_threads: usize,
        /// Daily cap per key in USD (charges cost $0.50).
        #[arg(long, default_value_t = 50.0)]
        cap_usd: f64,
        /// Rounds of direct, nginx and capgate; nginx and capgate swap order
        /// each round and the report gives the median ratios.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run the built-in mock vendor on its own (demo and bench upstream).
    MockVendor {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: std::net::SocketAddr,
        /// Worker threads.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Credential the mock requires (Bearer, x-api-key or Basic password).
        #[arg(long)]
        credential: Option<String>,
    },
    /// Read the audit log of a data dir (while capgate is stopped; use the
    /// admin API's /v1/audit/export on a running server).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Stream events as NDJSON or CSV to stdout.
    Export {
        /// Data directory.
        #[arg(long, default_value = "./capgate-data")]
        data_dir: PathBuf,
        /// ndjson or csv.
        #[arg(long, default_value = "ndjson")]
        format: String,
        /// Events from this time (RFC 3339 or Unix ms).
        #[arg(long)]
        since: Option<String>,
        /// Events before this time.
        #[arg(long)]
        until: Option<String>,
        /// Only labels with this prefix.
        #[arg(long)]
        label_prefix: Option<String>,
        /// Only this key id.
        #[arg(long)]
        key_id: Option<String>,
    },
}

fn audit_export(data_dir: &std::path::Path, format: &str, since: Option<String>, until: Option<String>, label_prefix: Option<String>, key_id: Option<String>) -> Result<(), String> {
    use std::io::Write;
    use capgate::audit::export::{export_stream, ExportFormat};
    let format = match format {
        "ndjson" => ExportFormat::Ndjson,
        "csv" => ExportFormat::Csv,
        other => return Err(format!("--format: expected ndjson or csv, got {other:?}")),
    };
    let time = |name: &str, v: Option<String>| v.map(|s| capgate::clock::parse_time(&s).ok_or_else(|| format!("--{name}: expected RFC 3339 or Unix ms, got {s:?}"))).transpose();
    let q = capgate::audit::query::AuditQuery { since_ms: time("since", since)?, until_ms: time("until", until)?, label_prefix, key_id, ..Default::default() };
    if !data_dir.exists() {
        return Err(format!("no data dir at {}", data_dir.display()));
    }
    let store = capgate::store::Store::open(data_dir).map_err(|e| format!("{e} (is capgate still running on this data dir? use GET /v1/audit/export instead)"))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for piece in export_stream(&store, q, format) {
        out.write_all(&piece?).map_err(|e| format!("write: {e}"))?;
    }
    out.flush().map_err(|e| format!("write: {e}"))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CAPGATE_LOG").unwrap_or_else(|_| "info,fjall=warn,lsm_tree=warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::MockVendor { listen, workers, credential } => match capgate::mock::MockVendor::start_with(listen, credential, workers, false) {
            Ok(m) => {
                println!("capgate: mock vendor on http://{}", m.addr);
                loop {
                    std::thread::park();
                }
            }
            Err(e) => {
                eprintln!("capgate: {e}");
                ExitCode::from(1)
            }
        },
        Command::Bench { target, target_admin, keys, tenants, connections, duration, zipf, mix, rate, workers, pin, durability, driver, no_nginx, generator_threads, cap_usd, rounds, json } => {
            let weights: Vec<u32> = mix.split(',').filter_map(|w| w.trim().parse().ok()).collect();
            let [c, g, l, r] = weights.as_slice() else {
                eprintln!("capgate: --mix takes four weights: charges,gets,llm,refused");
                return ExitCode::from(2);
            };
            if !(1..=capgate::bench::MAX_CONNECTIONS).contains(&connections) {
                eprintln!("capgate: --connections takes 1 to {}", capgate::bench::MAX_CONNECTIONS);
                return ExitCode::from(2);
            }
            if rate.is_some_and(|r| !(1.0..=capgate::bench::MAX_RATE).contains(&r)) {
                eprintln!("capgate: --rate takes 1 to {} requests per second", capgate::bench::MAX_RATE);
                return ExitCode::from(2);
            }
            let args = capgate::bench::BenchArgs {
                target,
                target_admin,
                keys,
                tenants,
                connections,
                duration: std::time::Duration::from_secs_f64(duration.max(1.0)),
                zipf,
                mix: [*c, *g, *l, *r],
                rate,
                workers,
                pin,
                durability,
                driver,
                no_nginx,
                generator_threads,
                cap_usd,
                rounds,
            };
            match capgate::bench::run(&args, json) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("capgate bench: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Audit { command: AuditCommand::Export { data_dir, format, since, until, label_prefix, key_id } } => match audit_export(&data_dir, &format, since, until, label_prefix, key_id) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("capgate: {e}");
                ExitCode::from(1)
            }
        },
        Command::DefaultConfig => {
            print!("{}", capgate::config::DEFAULT_TOML);
            ExitCode::SUCCESS
        }
        Command::Serve { config, proxy_listen, admin_listen, data_dir, workers } => {
            let text = match config.as_ref().map(std::fs::read_to_string).transpose() {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("capgate: cannot read config: {e}");
                    return ExitCode::from(2);
                }
            };
            let ov = Overrides { proxy_listen, admin_listen, data_dir, workers };
            let cfg = match Config::load(text.as_deref(), &ov) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("capgate: {e}");
                    return ExitCode::from(2);
                }
            };
            let workers = cfg.workers;
            match capgate::runtime::serve::start(cfg) {
                Ok(running) => {
                    println!("capgate: proxy listening on http://{} ({workers} workers)", running.proxy_addr);
                    println!("capgate: admin API on http://{}", running.admin_addr);
                    if let Some(d) = running.demo_addr {
                        println!("capgate: demo vendor (fake payments) on http://{d}, reachable as /demo/... through the proxy");
                    }
                    if let Some(t) = &running.new_admin_token {
                        println!("capgate: new admin token (shown once; only its hash is stored): {t}");
                    }
                    println!("capgate: ready");
                    for h in running.workers {
                        let _ = h.join();
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("capgate: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
