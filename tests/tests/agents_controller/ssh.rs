//! The real Claude Code CLI on an SSH build host (a real `sshd` from the lab fixture): the controller
//! reaches the host natively, the host's worker runs the CLI in a worktree there, and the session's
//! second turn resumes it on the same host.

use itervox_tests::binaries::bin_path;
use itervox_tests::fake_anthropic::FakeAnthropic;
use itervox_tests::project::Project;
use itervox_tests::sshd::SshLab;

use crate::support::{Lab, cli, issue, read, set_agent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claude_session_on_an_ssh_host_changes_its_worktree_and_resumes_there() {
    let fake = FakeAnthropic::start().await.unwrap();
    let ssh = SshLab::new().unwrap();
    let host = ssh.start_host("127.0.0.9").unwrap();
    ssh.trust(&host).unwrap();
    let tmp = host.dir().join("claude-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let extra_yaml = format!(
        "ssh:\n  user: root\n  identity_file: {key}\n  known_hosts: {kh}\n  strict_host_key_checking: yes\n  connect_timeout_ms: 20000\n  worker_path: {worker}\n",
        key = ssh.client_key().private_key.display(),
        kh = ssh.known_hosts().display(),
        worker = bin_path("itervox-worker").display(),
    );
    let project = Project::new(
        &[issue(
            "ABC-60",
            "Greet [[fake:resume]]",
            "[[fake:bash]] Create hello.txt.",
        )],
        &format!("  ssh_hosts: [\"{}\"]\n", host.spec()),
        &extra_yaml,
    );
    // The host's session environment is sshd's: the command itself points the CLI at the fake API.
    let command = format!(
        "/usr/bin/env ANTHROPIC_BASE_URL={} ANTHROPIC_API_KEY=sk-test CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
         DISABLE_TELEMETRY=1 DISABLE_AUTOUPDATER=1 CLAUDE_CODE_MAX_RETRIES=2 CLAUDE_CODE_TMPDIR={} {}",
        fake.base_url(),
        tmp.display(),
        cli("claude").display()
    );
    set_agent(&project, &command, "claude", 3, 3);
    let lab = Lab::start(project, &[]).await;

    let rows = lab.history("ABC-60", 1).await;
    let row = &rows[0];
    assert_eq!(row["status"], "succeeded", "{row}\n{}\n{}", lab.tail(), host.log());
    assert_eq!(row["workerHost"], host.spec(), "{row}");
    assert_eq!(row["turnCount"], 2, "{row}");
    assert_eq!(read(&lab.worktree("ABC-60"), "hello.txt"), "hello\n");
    let requests = fake.message_requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    let session = requests[0].headers.get("x-claude-code-session-id").cloned();
    assert!(session.is_some());
    assert!(
        requests
            .iter()
            .all(|r| r.headers.get("x-claude-code-session-id") == session.as_ref())
    );
    // Claude Code kept its session under the host's HOME, and the host serves it as the sublog.
    assert!(host.home().join(".claude/projects").is_dir());
    let sublogs = lab.api.get("/issues/ABC-60/sublogs").await.unwrap();
    assert!(
        sublogs
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["message"] == "echo hello > hello.txt"),
        "{sublogs:#}"
    );
}
