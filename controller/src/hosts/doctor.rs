//! Host checks for `itervox doctor`.
