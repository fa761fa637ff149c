//! Real process groups: termination reaches grandchildren, and a TERM-ignoring group gets SIGKILL.

use std::time::Duration;

use super::*;
use crate::process_identity::ProcessIdentity;

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn read_pid(path: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[tokio::test]
async fn terminate_kills_the_whole_group_including_grandchildren() {
    let tmp = tempfile::tempdir().unwrap();
    let pidfile = tmp.path().join("grandchild.pid");
    let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
    let mut child = spawn(Command::new("sh").arg("-c").arg(script)).unwrap();
    wait_until("the grandchild's pid file", || read_pid(&pidfile).is_some()).await;
    let grandchild = read_pid(&pidfile).unwrap();
    assert!(ProcessIdentity::of(grandchild).is_some());

    let status = child.terminate(Duration::from_secs(5)).await.unwrap();
    assert!(!status.success());
    wait_until("the grandchild to die", || ProcessIdentity::of(grandchild).is_none()).await;
    assert!(!group_exists(child.pid()) || ProcessIdentity::of(grandchild).is_none());
}

#[tokio::test]
async fn a_group_ignoring_sigterm_is_killed_after_the_grace() {
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready");
    let script = format!("trap '' TERM; touch {}; while :; do sleep 0.05; done", ready.display());
    let mut child = spawn(Command::new("sh").arg("-c").arg(script)).unwrap();
    wait_until("the trap to be installed", || ready.exists()).await;
    let status = child.terminate(Duration::from_millis(200)).await.unwrap();
    assert_eq!(describe_exit(&status), "killed by SIGKILL");
}

#[tokio::test]
async fn sweep_ends_leftovers_of_an_exited_leader() {
    let tmp = tempfile::tempdir().unwrap();
    let pidfile = tmp.path().join("bg.pid");
    let script = format!("sleep 300 & echo $! > {}", pidfile.display());
    let mut child = spawn(Command::new("sh").arg("-c").arg(script)).unwrap();
    let status = child.wait().await.unwrap();
    assert!(status.success());
    let bg = read_pid(&pidfile).unwrap();
    assert!(
        ProcessIdentity::of(bg).is_some(),
        "the background sleep outlived its leader"
    );
    sweep_group(child.pid(), Duration::from_secs(2), false).await;
    wait_until("the leftover to die", || ProcessIdentity::of(bg).is_none()).await;
}

#[test]
fn signalling_refuses_pid_zero_and_one() {
    assert!(!signal_group(0, Signal::SIGTERM).unwrap());
    assert!(!signal_group(1, Signal::SIGTERM).unwrap());
    assert!(!signal_process(1, Signal::SIGTERM).unwrap());
    assert!(!group_exists(0));
}
