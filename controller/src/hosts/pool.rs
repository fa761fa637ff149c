//! Host placement: which host gets the next session. Pure functions over a view of the hosts, so the
//! strategies are tested as plain data.

use std::cmp::Ordering;

use crate::config::DispatchStrategy;

/// What placement needs to know about one host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostView {
    pub name: String,
    /// Connected and answering.
    pub up: bool,
    /// Being removed: finishes its sessions, takes no new ones.
    pub draining: bool,
    /// Sessions the controller runs there now.
    pub running: u32,
    /// Per-host cap; 0 = unlimited.
    pub capacity: u32,
    pub load1: Option<f64>,
    pub cpus: Option<u32>,
}

impl HostView {
    /// Up, not draining, and below its cap.
    pub fn accepts_work(&self) -> bool {
        self.up && !self.draining && (self.capacity == 0 || self.running < self.capacity)
    }

    fn fill_ratio(&self) -> f64 {
        if self.capacity == 0 {
            f64::from(self.running)
        } else {
            f64::from(self.running) / f64::from(self.capacity)
        }
    }

    fn load_per_cpu(&self) -> f64 {
        match (self.load1, self.cpus) {
            (Some(l), Some(c)) if c > 0 => l / f64::from(c),
            (Some(l), _) => l,
            _ => 0.0,
        }
    }
}

/// Picks a host for a new session, or `None` when every host is down, draining or full (the caller
/// waits; it never falls back to another kind of host).
///
/// `prefer` names the host that already holds the worktree or agent session; it wins when it
/// accepts work. `cursor` is the round-robin position, advanced past the chosen host.
pub fn choose_host(
    hosts: &[HostView],
    strategy: DispatchStrategy,
    cursor: &mut usize,
    prefer: Option<&str>,
) -> Option<usize> {
    if let Some(name) = prefer
        && let Some(i) = hosts.iter().position(|h| h.name == name && h.accepts_work())
    {
        return Some(i);
    }
    if hosts.is_empty() {
        return None;
    }
    match strategy {
        DispatchStrategy::RoundRobin => {
            let n = hosts.len();
            let start = *cursor % n;
            let chosen = (0..n).map(|k| (start + k) % n).find(|&i| hosts[i].accepts_work())?;
            *cursor = chosen + 1;
            Some(chosen)
        }
        DispatchStrategy::LeastLoaded => hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.accepts_work())
            .min_by(|(ia, a), (ib, b)| {
                a.fill_ratio()
                    .partial_cmp(&b.fill_ratio())
                    .unwrap_or(Ordering::Equal)
                    .then(
                        a.load_per_cpu()
                            .partial_cmp(&b.load_per_cpu())
                            .unwrap_or(Ordering::Equal),
                    )
                    .then(ia.cmp(ib))
            })
            .map(|(i, _)| i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, running: u32, capacity: u32) -> HostView {
        HostView {
            name: name.into(),
            up: true,
            draining: false,
            running,
            capacity,
            load1: None,
            cpus: None,
        }
    }

    #[test]
    fn round_robin_cycles_and_skips_unavailable() {
        let mut hosts = vec![host("a", 0, 0), host("b", 0, 0), host("c", 0, 0)];
        let mut cursor = 0;
        let picks: Vec<_> = (0..4)
            .map(|_| choose_host(&hosts, DispatchStrategy::RoundRobin, &mut cursor, None).unwrap())
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0]);
        hosts[1].up = false;
        hosts[2].draining = true;
        assert_eq!(
            choose_host(&hosts, DispatchStrategy::RoundRobin, &mut cursor, None),
            Some(0)
        );
        assert_eq!(
            choose_host(&hosts, DispatchStrategy::RoundRobin, &mut cursor, None),
            Some(0)
        );
    }

    #[test]
    fn full_hosts_are_skipped_and_a_full_pool_waits() {
        let hosts = vec![host("a", 2, 2), host("b", 1, 2)];
        let mut cursor = 0;
        assert_eq!(
            choose_host(&hosts, DispatchStrategy::RoundRobin, &mut cursor, None),
            Some(1)
        );
        let full = vec![host("a", 2, 2), host("b", 2, 2)];
        assert_eq!(
            choose_host(&full, DispatchStrategy::RoundRobin, &mut cursor, None),
            None
        );
        assert_eq!(
            choose_host(&full, DispatchStrategy::LeastLoaded, &mut cursor, None),
            None
        );
        assert_eq!(choose_host(&[], DispatchStrategy::LeastLoaded, &mut cursor, None), None);
    }

    #[test]
    fn least_loaded_prefers_lowest_fill_then_load_then_order() {
        let mut hosts = vec![host("a", 2, 4), host("b", 1, 4), host("c", 1, 4)];
        let mut cursor = 0;
        assert_eq!(
            choose_host(&hosts, DispatchStrategy::LeastLoaded, &mut cursor, None),
            Some(1)
        );
        hosts[1].load1 = Some(3.0);
        hosts[1].cpus = Some(2);
        hosts[2].load1 = Some(1.0);
        hosts[2].cpus = Some(2);
        assert_eq!(
            choose_host(&hosts, DispatchStrategy::LeastLoaded, &mut cursor, None),
            Some(2)
        );
        // Relative to capacity: 1 of 1 is fuller than 2 of 8.
        let mixed = vec![host("small", 1, 1), host("big", 2, 8)];
        assert_eq!(
            choose_host(&mixed, DispatchStrategy::LeastLoaded, &mut cursor, None),
            Some(1)
        );
    }

    #[test]
    fn preferred_host_wins_when_it_accepts_work() {
        let hosts = vec![host("a", 0, 2), host("b", 1, 2)];
        let mut cursor = 0;
        assert_eq!(
            choose_host(&hosts, DispatchStrategy::RoundRobin, &mut cursor, Some("b")),
            Some(1)
        );
        let hosts = vec![host("a", 0, 2), host("b", 2, 2)];
        assert_eq!(
            choose_host(&hosts, DispatchStrategy::LeastLoaded, &mut cursor, Some("b")),
            Some(0)
        );
    }
}
