//! Process accounting for the bench: CPU seconds (in all, and by thread)
//! and peak RSS of a process tree (capgate, or nginx's master and workers)
//! read from /proc, and CPU pinning with `taskset`.

use std::collections::BTreeMap;
use std::process::{Child, Command};

/// Clock ticks per second (`getconf CLK_TCK`, asked once).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| std::process::Command::new("getconf").arg("CLK_TCK").output().ok().and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(100.0))
}

/// One `/proc/.../stat` text: the name between the parentheses and the
/// fields after them (state, ppid, ...).
fn parse_stat(text: &str) -> Option<(&str, Vec<&str>)> {
    let (head, rest) = text.rsplit_once(')')?;
    Some((head.split_once('(').map_or("?", |(_, n)| n), rest.split_whitespace().collect()))
}

/// (user, system) CPU seconds from the fields [`parse_stat`] gives.
fn user_system_secs(fields: &[&str]) -> (f64, f64) {
    let hz = clock_ticks();
    let t = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / hz;
    (t(11), t(12))
}

/// (user, system) CPU seconds of a process so far.
fn process_cpu(pid: u32) -> Option<(f64, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text).map(|(_, f)| user_system_secs(&f))
}

fn parent_of(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)?.1.get(1)?.parse().ok()
}

/// Every pid in the tree rooted at `root`.
pub fn tree(root: u32) -> Vec<u32> {
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
                    if parent_of(pid) == Some(parent) && !out.contains(&pid) {
                        out.push(pid);
                    }
                }
            }
        }
        i += 1;
    }
    out
}

/// CPU seconds (user + system) used by a process tree so far.
pub fn cpu_secs(root: u32) -> f64 {
    tree(root).into_iter().filter_map(process_cpu).map(|(u, s)| u + s).sum()
}

/// CPU seconds so far of every thread in the tree rooted at `root`, as
/// (user, system), summed by thread name with any `-<number>` suffix cut
/// (`capgate-core-0` and `capgate-core-1` are both `capgate-core`).
pub fn thread_cpu_secs(root: u32) -> BTreeMap<String, (f64, f64)> {
    let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for pid in tree(root) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { continue };
        for task in tasks.flatten() {
            let Ok(text) = std::fs::read_to_string(task.path().join("stat")) else { continue };
            let Some((name, fields)) = parse_stat(&text) else { continue };
            let (user, system) = user_system_secs(&fields);
            let e = out.entry(thread_group(name).to_string()).or_default();
            e.0 += user;
            e.1 += system;
        }
    }
    out
}

/// A thread's name without a trailing `-<number>`.
fn thread_group(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((group, n)) if !group.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => group,
        _ => name,
    }
}

/// CPU seconds used by this process so far.
pub fn self_cpu_secs() -> f64 {
    process_cpu(std::process::id()).map_or(0.0, |(u, s)| u + s)
}

/// Peak resident memory (VmHWM) of a process tree, KiB (summed).
pub fn peak_rss_kib(root: u32) -> u64 {
    tree(root).into_iter().map(|p| status_kib(p, "VmHWM:")).sum()
}

/// Current resident memory (VmRSS) of a process, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// A command, prefixed with `taskset -c <cpus>` when pinning.
pub fn pinned(program: &str, cpus: Option<&str>) -> Command {
    match cpus {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", c, program]);
            cmd
        }
        None => Command::new(program),
    }
}

/// Pins every thread of this process (and threads it starts later).
pub fn pin_self(cpus: &str) {
    let _ = Command::new("taskset").args(["-a", "-p", "-c", cpus, &std::process::id().to_string()]).output();
}

/// Asks a child to stop with SIGTERM (so a master process such as nginx's
/// takes its workers down with it), waits up to 3 s, then kills and reaps it.
pub fn terminate(mut child: Child) {
    if let Some(pid) = i32::try_from(child.id()).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while std::time::Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    stop(child);
}

/// Kills and reaps a child.
fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A child process that is stopped ([`terminate`]) when dropped, so a
/// harness run that ends early, on an error, leaves nothing running.
pub struct Stopped(Option<Child>);

impl Stopped {
    /// Takes charge of `child`.
    pub fn new(child: Child) -> Stopped {
        Stopped(Some(child))
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Some(child) = self.0.take() {
            terminate(child);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_grouped_without_their_number() {
        assert_eq!(thread_group("capgate-core-0"), "capgate-core");
        assert_eq!(thread_group("capgate-core-12"), "capgate-core");
        assert_eq!(thread_group("capgate-audit"), "capgate-audit");
        assert_eq!(thread_group("fjall:worker"), "fjall:worker");
        assert_eq!(thread_group("nginx"), "nginx");
        assert_eq!(thread_group("-7"), "-7");
        assert_eq!(thread_group("x-"), "x-");
    }

    #[test]
    fn this_process_threads_are_read_by_name() {
        // The probe spins until the kernel has charged it CPU (read straight
        // from its own stat line, not through the code under test), however
        // slowly a loaded machine schedules it, then stays alive until read.
        let (charged_tx, charged_rx) = std::sync::mpsc::channel::<()>();
        let (read_tx, read_rx) = std::sync::mpsc::channel::<()>();
        let ticks = || {
            let text = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
            let fields: Vec<u64> = text.rsplit_once(')').map(|(_, r)| r.split_whitespace().skip(11).take(2).filter_map(|f| f.parse().ok()).collect()).unwrap_or_default();
            fields.iter().sum::<u64>()
        };
        let spin = std::thread::Builder::new()
            .name("cpu-probe-3".into())
            .spawn(move || {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                let mut x = 0u64;
                while ticks() == 0 && std::time::Instant::now() < deadline {
                    for _ in 0..100_000 {
                        x = std::hint::black_box(x.wrapping_add(1));
                    }
                }
                let _ = charged_tx.send(());
                let _ = read_rx.recv_timeout(std::time::Duration::from_secs(60));
                x
            })
            .unwrap();
        charged_rx.recv_timeout(std::time::Duration::from_secs(90)).expect("the probe thread ran");
        let by = thread_cpu_secs(std::process::id());
        let _ = read_tx.send(());
        let (user, sys) = by.get("cpu-probe").copied().expect("the probe thread is listed under its group");
        assert!(user + sys > 0.0, "a thread the kernel charged CPU shows some: {by:?}");
        let _ = spin.join();
    }
}
