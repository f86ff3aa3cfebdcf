//! The start scripts fail loudly: a port already taken, or a broker that dies
//! while starting, is an error naming the port or showing the broker's log,
//! never a test run against whatever happens to answer there. And the suite's
//! summary (scripts/test-summary.sh) counts and names failures.

use std::net::TcpListener;
use std::process::{Command, Output};

use credit_bus_tests::{listener_ports, script, unique};

fn run(script_name: &str, args: &[&str]) -> Output {
    Command::new(script(script_name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running scripts/{script_name}: {e}"))
}

/// `kafka.sh start NAME` on the SASL, plaintext and controller ports given.
fn kafka_start(name: &str, [sasl, plaintext, controller]: [u16; 3], more: &[&str]) -> Output {
    let ports = [sasl, plaintext, controller].map(|p| p.to_string());
    let mut args = vec![
        "start",
        name,
        "--sasl-port",
        &ports[0],
        "--plaintext-port",
        &ports[1],
        "--controller-port",
        &ports[2],
    ];
    args.extend_from_slice(more);
    run("kafka.sh", &args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Each of a broker's three ports, held by this test beforehand, makes `kafka.sh start` fail with that port in its message,
/// and leaves no broker running.
#[test]
fn kafka_start_refuses_a_port_that_is_taken() {
    for (taken, what) in [(0, "SASL"), (1, "plaintext"), (2, "controller")] {
        let ports = listener_ports();
        let holder = TcpListener::bind(("127.0.0.1", ports[taken])).unwrap();
        let name = unique("port-taken");
        let out = kafka_start(&name, ports, &[]);
        let err = stderr(&out);
        assert!(
            !out.status.success(),
            "{what} port taken, yet start succeeded"
        );
        assert!(
            err.contains(&format!("port {} ", ports[taken])) && err.contains(what),
            "{what} port {} taken; the message does not name it: {err}",
            ports[taken]
        );
        let status = run("kafka.sh", &["status", &name]);
        assert!(
            !status.status.success(),
            "a broker runs after a refused start"
        );
        drop(holder);
        run("kafka.sh", &["delete", &name]);
    }
}

#[test]
fn postgres_start_refuses_a_port_that_is_taken() {
    let [port, _, _] = listener_ports();
    let holder = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let name = unique("pg-port-taken");
    let out = run(
        "postgres.sh",
        &["start", &name, "--port", &port.to_string()],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "port taken, yet start succeeded");
    assert!(
        err.contains(&format!("port {port} ")),
        "port {port} taken; the message does not name it: {err}"
    );
    let status = run("postgres.sh", &["status", &name]);
    assert!(
        !status.status.success(),
        "a server runs after a refused start"
    );
    drop(holder);
}

/// A broker whose JVM dies during start-up (here: an authorizer class that
/// does not exist, which the storage format accepts and the broker does not)
/// is reported with the end of its log, and nothing is left running.
#[test]
fn kafka_start_reports_a_broker_that_dies_with_its_log() {
    let ports = listener_ports();
    let name = unique("dies");
    let out = kafka_start(
        &name,
        ports,
        &["--property", "authorizer.class.name=no.such.Authorizer"],
    );
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "the broker died, yet start succeeded"
    );
    assert!(
        err.contains("died during start-up"),
        "no death reported: {err}"
    );
    assert!(
        err.contains("ClassNotFoundException: no.such.Authorizer"),
        "the log tail with the cause is missing: {err}"
    );
    let status = run("kafka.sh", &["status", &name]);
    assert!(
        !status.status.success(),
        "a broker runs after a failed start"
    );
    for p in ports {
        assert!(
            TcpListener::bind(("127.0.0.1", p)).is_ok(),
            "port {p} still held after the failed start"
        );
    }
    run("kafka.sh", &["delete", &name]);
}

/// The summary scripts/test.sh prints, checked on a scratch run with failing,
/// aborting and passing test binaries (the script's own self-test).
#[test]
fn the_suite_summary_counts_and_names_failures() {
    let out = run("test-summary.sh", &["--self-test"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "self-test failed:\n{stdout}\n{}",
        stderr(&out)
    );
    assert!(
        stdout.contains("tests: 4 passed, 3 failed, 1 skipped"),
        "{stdout}"
    );
}
