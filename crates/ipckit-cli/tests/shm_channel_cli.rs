//! `ipckit send shm:NAME` and `ipckit recv shm:NAME` like every other
//! endpoint: the readiness line, `--json` with the sender's pid, exit 3 on
//! a timeout, `--create` refused, and `ipckit ls` showing the channel with
//! its receiver's pid and its senders.

use std::io::Write;
use std::process::Stdio;

use ipckit_testkit::cli::Ipckit;
use ipckit_testkit::program::Bg;
use ipckit_testkit::scratch::Scratch;

const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

#[test]
fn send_and_recv_on_shm() {
    let s = Scratch::new("cli-shm");
    let ep = format!("shm:{}", s.name("c"));
    let mut recv = Bg::spawn(IPCKIT.command().args(["recv", &ep, "--count", "3", "--json"]));
    assert_eq!(recv.ready(), ep);
    let out = IPCKIT.run(&["send", &ep, "one", "two"]);
    out.expect_code(0, "send with arguments");
    let pid = out.pid;
    let out = IPCKIT.run_stdin(&["send", &ep], b"three\n");
    out.expect_code(0, "send from stdin");
    let out = recv.finish();
    out.expect_code(0, "recv");
    let rows = out.json_lines();
    let data: Vec<&str> = rows.iter().map(|r| r["data"].as_str().unwrap()).collect();
    assert_eq!(data, ["one", "two", "three"]);
    assert_eq!(rows[0]["pid"], pid, "--json carries the sender's pid");
}

#[test]
fn timeouts_exit_3_and_create_is_a_usage_error() {
    let s = Scratch::new("cli-shm-t");
    let ep = format!("shm:{}", s.name("t"));
    IPCKIT.run(&["recv", &ep, "--timeout", "50ms"]).expect_code(3, "recv with nothing sent");
    IPCKIT.run(&["send", &ep, "--timeout", "50ms", "x"]).expect_code(3, "send with no receiver");
    let out = IPCKIT.run(&["recv", &ep, "--create", "--timeout", "50ms"]);
    out.expect_code(2, "--create on shm:");
    assert!(out.stderr.contains("create"), "{}", out.stderr);
}

#[test]
fn ls_shows_a_channel_with_its_receiver_and_senders() {
    let s = Scratch::new("cli-shm-ls");
    let ep = format!("shm:{}", s.name("ls"));
    let mut recv = Bg::spawn(IPCKIT.command().args(["recv", &ep, "--count", "1"]));
    recv.ready();
    // A sender that stays connected while ls looks: it sends once stdin
    // gives it a line.
    let mut sender = IPCKIT.command();
    sender.args(["send", &ep, "--timeout", "30s"]).stdin(Stdio::piped());
    let mut sender = Bg::spawn(&mut sender);
    let mut listed = None;
    for _ in 0..3000 {
        let out = IPCKIT.run(&["ls", "--json"]);
        out.expect_code(0, "ls");
        let row = out.json_lines().into_iter().find(|r| r["name"] == ep.as_str());
        if let Some(row) = row.filter(|r| r["senders"] == 1) {
            listed = Some(row);
            break;
        }
    }
    let row = listed.expect("ls shows the channel with its one sender");
    assert_eq!(row["kind"], "shm-channel");
    assert_eq!(row["receiver_pid"], recv.pid());
    sender.stdin().write_all(b"bye\n").unwrap();
    sender.close_stdin();
    sender.finish().expect_code(0, "send");
    let out = recv.finish();
    assert_eq!(out.text(), "bye\n");
    // Gone with its processes.
    let out = IPCKIT.run(&["ls", "--json"]);
    assert!(!out.json_lines().iter().any(|r| r["name"] == ep.as_str()), "the channel outlived its receiver");
}
