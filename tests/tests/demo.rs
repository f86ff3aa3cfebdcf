//! The demo as a newcomer runs it: `scripts/demo.sh` with the suite's debug
//! binaries, on a broker and ports of its own (never the suite's broker or a
//! demo someone runs), until the terminal view shows every publishing
//! department's figures and notices by kind; meanwhile the README's
//! `credit-bus subscribe --department finance` prints notices although the
//! demo's own finance subscriber runs; then a Ctrl-C as a terminal sends it
//! (SIGINT to the demo's process group) stops everything within 10 s, and no
//! process the demo started is left.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use credit_bus_tests::{bin, listener_ports, script, unique};
use credit_core::catalogue::publishing_departments;
use credit_core::notice::NoticeKind;

/// A base port whose ops ports (base+1..+5, +10, +20, +30: demo.sh's layout)
/// are all free now, below the ephemeral range.
fn ops_base() -> u16 {
    for _ in 0..200 {
        let [p, _, _] = listener_ports();
        let base = p.min(31_000);
        let held: Vec<_> = [1, 2, 3, 4, 5, 10, 20, 30]
            .iter()
            .filter_map(|o| std::net::TcpListener::bind(("127.0.0.1", base + o)).ok())
            .collect();
        if held.len() == 8 {
            return base;
        }
    }
    panic!("no free ops port range");
}

/// Every process whose environment carries `mark` (the demo's children
/// inherit it, whatever session or process group they moved to).
fn marked_processes(mark: &str) -> Vec<String> {
    let needle = format!("CREDIT_BUS_DEMO_TEST_MARK={mark}");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            // A zombie not yet reaped by its parent is gone already.
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            if stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'))
            {
                continue;
            }
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            out.push(format!("{pid}: {cmd}"));
        }
    }
    out
}

/// The last complete frame of the view (frames start with a screen clear).
fn last_frame(out: &str) -> Option<&str> {
    let mut frames = out.split("\x1b[2J\x1b[H");
    frames.next();
    let frames: Vec<&str> = frames.collect();
    // The last frame may still be printing: take the one before it.
    frames.len().checked_sub(2).map(|i| frames[i])
}

/// Publishing departments with a row whose received figure is above 0, and
/// whether the notices line shows punishments above 0.
fn shows_figures(frame: &str) -> (Vec<&'static str>, bool) {
    let mut missing = Vec::new();
    for d in publishing_departments() {
        let row = frame.lines().find(|l| l.starts_with(&format!("{} ", d.id)));
        let received = row
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok());
        if received.unwrap_or(0) == 0 {
            missing.push(d.id);
        }
    }
    let kind = NoticeKind::Punishment.as_str();
    let punished = frame
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{kind} ")))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > 0);
    (missing, punished)
}

/// `export NAME=VALUE` lines of demo.env (values printed with `%q`; the demo's
/// are plain words).
fn demo_env(path: &std::path::Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

#[test]
fn the_demo_shows_every_department_and_ctrl_c_stops_everything() {
    let run = std::env::temp_dir().join(unique("demo-run"));
    std::fs::create_dir_all(&run).unwrap();
    let [sasl, _, controller] = listener_ports();
    let [registry, dashboard, _] = listener_ports();
    let ops = ops_base();
    let mark = unique("demo");
    let bin_dir = bin("credit-bus").parent().unwrap().to_path_buf();

    // A terminal's shell starts the demo with SIGINT at its default; a suite
    // run in the background may have it ignored, which bash cannot undo, so
    // the default is restored before the script starts. Its own process
    // group: the "terminal" below signals that group, as Ctrl-C does.
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); \
             os.execv(sys.argv[1], sys.argv[1:])",
        ])
        .arg(script("demo.sh"))
        .env("CB_RUN", &run)
        .env("CREDIT_BUS_DEMO_BIN_DIR", &bin_dir)
        .env("CREDIT_BUS_DEMO_PORT", sasl.to_string())
        .env("CREDIT_BUS_DEMO_CONTROLLER_PORT", controller.to_string())
        .env("CREDIT_BUS_DEMO_REGISTRY_PORT", registry.to_string())
        .env("CREDIT_BUS_DEMO_OPS_PORT", ops.to_string())
        .env("CREDIT_BUS_DEMO_DASHBOARD_PORT", dashboard.to_string())
        .env("CREDIT_BUS_DEMO_RATE", "50")
        .env("CREDIT_BUS_DEMO_PAUSE", "0")
        // Bounded: the demo ends by itself after 6 minutes at most.
        .env("CREDIT_BUS_DEMO_ITERATIONS", "360")
        .env("CREDIT_BUS_DEMO_TEST_MARK", &mark)
        .env_remove("CREDIT_BUS_CONFIG")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting scripts/demo.sh");
    let pgid = child.id();
    let out = Arc::new(Mutex::new(String::new()));
    let err = Arc::new(Mutex::new(String::new()));
    for (mut pipe, buf) in [
        (
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            out.clone(),
        ),
        (Box::new(child.stderr.take().unwrap()), err.clone()),
    ] {
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
    }
    let text = |b: &Arc<Mutex<String>>| b.lock().unwrap().clone();
    let ctrl_c = || {
        Command::new("kill")
            .args(["-INT", "--", &format!("-{pgid}")])
            .status()
            .expect("running kill");
    };

    // The view shows every publishing department and notices by kind.
    let deadline = Instant::now() + Duration::from_secs(150);
    let frame = loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the demo ended ({status}) before its view showed figures:\n{}\n{}",
                text(&err),
                last_frame(&text(&out)).unwrap_or("")
            );
        }
        let o = text(&out);
        if let Some(f) = last_frame(&o) {
            let (missing, punished) = shows_figures(f);
            if missing.is_empty() && punished {
                break f.to_string();
            }
            if Instant::now() > deadline {
                ctrl_c();
                panic!(
                    "no figures for {missing:?} or no punishments after 150 s:\n{f}\n{}",
                    text(&err)
                );
            }
        } else if Instant::now() > deadline {
            ctrl_c();
            panic!("no view after 150 s:\n{}", text(&err));
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("{frame}");
    assert!(
        frame.lines().count() <= 50,
        "the view is longer than 50 lines:\n{frame}"
    );
    assert!(
        frame.contains("target/s") && frame.contains("reached/s"),
        "{frame}"
    );

    // The README's example, while the demo's finance subscriber runs: a
    // private group, so it gets notices of its own.
    let env = demo_env(&run.join("demo.env"));
    assert!(!env.is_empty(), "no demo.env in {}", run.display());
    let sub = Command::new(bin("credit-bus"))
        .args(["subscribe", "--department", "finance", "--max", "3"])
        .envs(env)
        .env_remove("CREDIT_BUS_CONFIG")
        .env("CREDIT_BUS_DEMO_TEST_MARK", &mark)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running credit-bus subscribe");
    let mut sub = credit_bus_tests::Proc(sub);
    let started = Instant::now();
    let sub_status = loop {
        if let Some(s) = sub.0.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > Duration::from_secs(60) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut sub_out = String::new();
    let mut sub_err = String::new();
    if sub_status.is_some() {
        sub.0
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut sub_out)
            .unwrap();
        sub.0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut sub_err)
            .unwrap();
    } else {
        sub.kill9();
    }
    let notices = sub_out
        .lines()
        .filter(|l| l.contains("\"department\":\"finance\""))
        .count();

    // Ctrl-C, as a terminal sends it.
    let stop_started = Instant::now();
    ctrl_c();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if stop_started.elapsed() > Duration::from_secs(30) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .status();
            panic!("the demo still runs 30 s after Ctrl-C:\n{}", text(&err));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stop = stop_started.elapsed();
    eprintln!(
        "demo stopped {:.1} s after Ctrl-C ({status})",
        stop.as_secs_f64()
    );
    // The stop order is logged as the demo goes.
    let e = text(&err);
    let left = {
        // Processes reparented on their parent's exit may take a moment.
        let until = Instant::now() + Duration::from_secs(3);
        loop {
            let left = marked_processes(&mark);
            if left.is_empty() || Instant::now() > until {
                break left;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    if !left.is_empty() {
        for l in &left {
            if let Some(pid) = l.split(':').next() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
    }
    assert!(left.is_empty(), "left running after Ctrl-C: {left:#?}\n{e}");
    assert!(
        stop < Duration::from_secs(10),
        "the demo took {stop:?} to stop after Ctrl-C:\n{e}"
    );
    assert!(
        e.contains("stopping: publishers, services, registry, broker"),
        "{e}"
    );
    assert!(
        sub_status.is_some() && notices == 3,
        "subscribe --department finance printed {notices} notices within 60 s ({sub_status:?}):\n{sub_out}\n{sub_err}"
    );
    assert!(sub_err.contains("private group"), "{sub_err}");
    let _ = std::fs::remove_dir_all(&run);
}
