//! carryover: the guest agent that carries a server's settings and data across a cloud
//! Change OS. The library holds everything; `main.rs` only parses and maps errors.

pub mod agent;
pub mod capture;
pub mod check;
pub mod cli;
pub mod config;
pub mod data;
pub mod disks;
pub mod error;
pub mod hooks;
pub mod local;
pub mod metadata;
pub mod origin;
pub mod paths;
pub mod report;
pub mod restore;
pub mod retry;
pub mod service;
pub mod state;
pub mod status;
pub mod store;
pub mod sys;
pub mod units;
pub mod userdata;
