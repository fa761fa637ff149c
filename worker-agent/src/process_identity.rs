//! Telling whether a recorded process is still the same live process: pid plus its start time from
//! `/proc/<pid>/stat`, so a reused pid is never mistaken for our supervisor or agent.

use serde::{Deserialize, Serialize};

/// A process as recorded in a session's state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessIdentity {
    pub pid: u32,
    /// Start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
    pub start_ticks: u64,
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub pgid: u32,
    pub start_ticks: u64,
}

/// Parses the text of `/proc/<pid>/stat`. The command name (field 2) may hold spaces and parentheses,
/// so fields are counted from the last `)`. Pure.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state); field N is at index N - 3.
    let state = fields.first()?.chars().next()?;
    let pgid = fields.get(5 - 3)?.parse().ok()?;
    let start_ticks = fields.get(22 - 3)?.parse().ok()?;
    Some(ProcStat {
        state,
        pgid,
        start_ticks,
    })
}

/// Reads `/proc/<pid>/stat`; `None` when the process does not exist.
pub fn stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

impl ProcessIdentity {
    /// The identity of a running process; `None` when it is gone or a zombie.
    pub fn of(pid: u32) -> Option<ProcessIdentity> {
        let st = stat(pid)?;
        if matches!(st.state, 'Z' | 'X' | 'x') {
            return None;
        }
        Some(ProcessIdentity {
            pid,
            start_ticks: st.start_ticks,
        })
    }

    /// This process.
    pub fn current() -> Option<ProcessIdentity> {
        ProcessIdentity::of(std::process::id())
    }

    /// True while this very process runs (not exited, not a zombie, pid not reused).
    pub fn is_alive(&self) -> bool {
        ProcessIdentity::of(self.pid) == Some(*self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let text = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        let st = parse_stat(text).unwrap();
        assert_eq!(st.state, 'S');
        assert_eq!(st.pgid, 4242);
        assert_eq!(st.start_ticks, 987654);
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessIdentity::current().unwrap();
        assert!(me.is_alive());
        let impostor = ProcessIdentity {
            start_ticks: me.start_ticks + 1,
            ..me
        };
        assert!(!impostor.is_alive());
    }
}
