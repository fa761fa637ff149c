//! Unit tests of the agent seam: command lines, command splitting and quoting, the sentinel, rate-limit
//! classification and reset parsing, tool summaries, line decoding and pull-request URLs.

mod command;
mod pure;
