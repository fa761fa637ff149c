//! Reading and clearing the agent CLIs' own session logs for an issue: placeholder until it lands.
