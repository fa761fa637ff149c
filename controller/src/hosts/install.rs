//! Installing the matching `itervox-worker` on a host over an existing SSH connection.
