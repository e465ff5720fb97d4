//! The settings only a Windows server has — DNS servers and suffix per adapter, the
//! services of the Service Control Manager — as data every build can read (a Windows
//! snapshot is inspected on Linux too), gathered through the platform layer on Windows.

use serde::{Deserialize, Serialize};

use super::Gather;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WindowsState {
    pub dns: Vec<AdapterDns>,
    pub services: Vec<WinService>,
}

/// DNS servers and suffix of one network adapter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdapterDns {
    pub adapter: String,
    pub servers: Vec<String>,
    pub suffix: Option<String>,
}

/// A Windows service as the Service Control Manager knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WinService {
    pub name: String,
    pub display_name: String,
    /// `boot`, `system`, `auto`, `demand` or `disabled`.
    pub start_type: String,
    pub binary_path: String,
    pub account: String,
    pub running: bool,
}

impl WindowsState {
    /// The DNS servers and suffixes of all adapters, in adapter order, without repeats.
    pub fn nameservers_and_search(&self) -> (Vec<String>, Vec<String>) {
        let (mut ns, mut search) = (Vec::new(), Vec::new());
        for a in &self.dns {
            for s in &a.servers {
                super::push_unique(&mut ns, s);
            }
            if let Some(x) = &a.suffix {
                super::push_unique(&mut search, x);
            }
        }
        (ns, search)
    }
}

/// Asks the running Windows (only for the live root: a directory tree has no SCM).
#[cfg(windows)]
pub fn gather(g: &Gather) -> Option<WindowsState> {
    if !g.root.is_live() {
        return None;
    }
    let dns = crate::sys::dns_by_adapter()
        .map_err(|e| g.problem("GetAdaptersAddresses", e))
        .unwrap_or_default();
    let services = crate::sys::services()
        .map_err(|e| g.problem("the Service Control Manager", e))
        .unwrap_or_default();
    Some(WindowsState { dns, services })
}

/// No Windows settings on other systems.
#[cfg(not(windows))]
pub fn gather(_g: &Gather) -> Option<WindowsState> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapters_merge_into_one_resolver_list() {
        let w = WindowsState {
            dns: vec![
                AdapterDns {
                    adapter: "Ethernet".into(),
                    servers: vec!["100.125.1.250".into(), "100.125.64.250".into()],
                    suffix: Some("corp.example".into()),
                },
                AdapterDns {
                    adapter: "Ethernet 2".into(),
                    servers: vec!["100.125.1.250".into()],
                    suffix: None,
                },
            ],
            services: vec![],
        };
        let (ns, search) = w.nameservers_and_search();
        assert_eq!(ns, vec!["100.125.1.250", "100.125.64.250"]);
        assert_eq!(search, vec!["corp.example"]);
    }
}
