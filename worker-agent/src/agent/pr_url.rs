//! Pull-request URLs in an agent's output (GitHub and GitHub Enterprise `…/pull/N`, GitLab
//! `…/-/merge_requests/N`, Bitbucket `…/pull-requests/N`), and the once-per-URL bookkeeping of a run.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

static PR_URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"https?://[A-Za-z0-9][A-Za-z0-9.\-]*(?::\d+)?/[A-Za-z0-9._~\-]+(?:/[A-Za-z0-9._~\-]+)*?/(?:pull|pull-requests|-/merge_requests)/\d+\b",
    )
    .expect("static regex")
});

/// Every pull-request URL in `text`, in order of appearance.
pub fn find_all(text: &str) -> Vec<&str> {
    PR_URL.find_iter(text).map(|m| m.as_str()).collect()
}

/// Remembers the URLs a run already reported, so each gets one `pr` entry.
#[derive(Debug, Default, Clone)]
pub struct PrTracker {
    seen: BTreeSet<String>,
    last: Option<String>,
}

impl PrTracker {
    /// The URLs in `text` not seen before (now remembered).
    pub fn new_urls(&mut self, text: &str) -> Vec<String> {
        let mut fresh = Vec::new();
        for url in find_all(text) {
            if self.seen.insert(url.to_string()) {
                fresh.push(url.to_string());
            }
            self.last = Some(url.to_string());
        }
        fresh
    }

    /// The most recently mentioned pull-request URL.
    pub fn last(&self) -> Option<&str> {
        self.last.as_deref()
    }
}
