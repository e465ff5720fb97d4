//! The integration tests: the real `carryover` binary driven as a user would, on
//! directory trees shaped like real servers.
#![cfg(unix)]

#[path = "integration/fixtures.rs"]
#[macro_use]
mod fixtures;

#[path = "integration/accounts.rs"]
mod accounts;
#[path = "integration/bad_input.rs"]
mod bad_input;
#[path = "integration/check.rs"]
mod check;
#[path = "integration/compat.rs"]
mod compat;
#[path = "integration/cycle.rs"]
mod cycle;
#[path = "integration/data.rs"]
mod data;
#[path = "integration/disks.rs"]
mod disks;
#[path = "integration/hooks.rs"]
mod hooks;
#[path = "integration/hostile.rs"]
mod hostile;
#[path = "integration/hostile_store.rs"]
mod hostile_store;
#[path = "integration/identity.rs"]
mod identity;
#[path = "integration/logins.rs"]
mod logins;
#[path = "integration/output.rs"]
mod output;
#[path = "integration/packaging.rs"]
mod packaging;
#[path = "integration/probe.rs"]
mod probe;
#[path = "integration/report.rs"]
mod report;
#[path = "integration/s3.rs"]
mod s3;
#[path = "integration/service.rs"]
mod service;
#[path = "integration/upkeep.rs"]
mod upkeep;
#[path = "integration/userdata.rs"]
mod userdata;
