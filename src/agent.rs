//! The agents kept in the store, one per OS family and CPU architecture, so that the
//! user-data installs on the new OS a build that runs there: an x86_64 server's store can
//! carry the aarch64 agent for a Kunpeng server and `carryover.exe` for a change to
//! Windows. What an agent is for is read from its own header (ELF or PE), never from a
//! name: the store is untrusted, and a file put in with `--agent` may be the wrong build.

use std::fmt;

use anyhow::{Result, bail};

use crate::config::Target;
use crate::store::backend::Backend;

/// Where a store written before agents were kept per architecture holds its Linux agent
/// (still read: its header says which architecture it is for).
pub const LEGACY_KEY: &str = "agent/carryover";
/// Where the Windows agent is kept (x86_64 only).
pub const WINDOWS_KEY: &str = "agent/carryover.exe";

/// A CPU architecture carryover is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// The architecture this build of the agent runs on.
    pub fn this() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::X86_64
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an agent binary runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    pub os: Target,
    pub arch: Arch,
}

impl Platform {
    /// The platform of this very build.
    pub fn this() -> Platform {
        Platform {
            os: if cfg!(windows) {
                Target::Windows
            } else {
                Target::Linux
            },
            arch: Arch::this(),
        }
    }

    /// The store key its agent is kept under. Windows has one build (x86_64).
    pub fn key(self) -> Result<&'static str> {
        Ok(match (self.os, self.arch) {
            (Target::Linux, Arch::X86_64) => "agent/linux-x86_64/carryover",
            (Target::Linux, Arch::Aarch64) => "agent/linux-aarch64/carryover",
            (Target::Windows, Arch::X86_64) => WINDOWS_KEY,
            (Target::Windows, Arch::Aarch64) => {
                bail!("carryover has no Windows build for aarch64")
            }
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.os, self.arch)
    }
}

/// How many bytes of a file `identify` needs at most.
pub const HEADER_BYTES: usize = 4096;

/// What a binary runs on, from its header: a 64-bit little-endian ELF executable for
/// x86_64 or aarch64 (Linux), or a PE image for x86-64 (Windows). Anything else is `None`.
pub fn identify(head: &[u8]) -> Option<Platform> {
    let u16_at = |at: usize| {
        head.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        head.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if head.starts_with(b"\x7fELF") {
        // ELFCLASS64, little-endian, an executable or a position-independent one
        if head.get(4) != Some(&2) || head.get(5) != Some(&1) {
            return None;
        }
        if !matches!(u16_at(16)?, 2 | 3) {
            return None;
        }
        let arch = match u16_at(18)? {
            0x3e => Arch::X86_64,
            0xb7 => Arch::Aarch64,
            _ => return None,
        };
        return Some(Platform {
            os: Target::Linux,
            arch,
        });
    }
    if head.starts_with(b"MZ") {
        let pe = usize::try_from(u32_at(0x3c)?).ok()?;
        if head.get(pe..pe.checked_add(4)?)? != b"PE\0\0" {
            return None;
        }
        let arch = match u16_at(pe + 4)? {
            0x8664 => Arch::X86_64,
            0xaa64 => Arch::Aarch64,
            _ => return None,
        };
        return Some(Platform {
            os: Target::Windows,
            arch,
        });
    }
    None
}

/// The key of the store's agent for `want`: its own key when the header of what is there
/// agrees, else (a Linux agent of an older store) `agent/carryover` when that one is for
/// `want`; with its bytes, identified from the very bytes returned, so that what the
/// user-data pins is what was judged.
pub fn load(store: &dyn Backend, want: Platform) -> Result<Option<(&'static str, Vec<u8>)>> {
    let key = want.key()?;
    for k in [key, LEGACY_KEY] {
        if k == LEGACY_KEY && want.os != Target::Linux {
            break;
        }
        if let Some(bytes) = store.get(k)?
            && identify(&bytes[..bytes.len().min(HEADER_BYTES)]) == Some(want)
        {
            return Ok(Some((k, bytes)));
        }
    }
    Ok(None)
}

/// The key `load` finds, if any.
pub fn find(store: &dyn Backend, want: Platform) -> Option<&'static str> {
    load(store, want).ok().flatten().map(|(key, _)| key)
}

/// Keeps `bytes` (an agent binary) in the store under the key of the platform its header
/// names, unless the store already holds this very file there. Returns that platform.
pub fn keep(store: &dyn Backend, bytes: &[u8]) -> Result<Platform> {
    let Some(platform) = identify(&bytes[..bytes.len().min(HEADER_BYTES)]) else {
        bail!(
            "not a carryover agent for a platform carryover runs on (x86_64 or aarch64 Linux ELF, x86-64 Windows PE)"
        );
    };
    let key = platform.key()?;
    if store.get(key)?.as_deref() != Some(bytes) {
        store.put(key, bytes)?;
    }
    Ok(platform)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(class: u8, machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = 1;
        h[16] = 3;
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h
    }

    fn pe(machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 256];
        h[..2].copy_from_slice(b"MZ");
        h[0x3c..0x40].copy_from_slice(&128u32.to_le_bytes());
        h[128..132].copy_from_slice(b"PE\0\0");
        h[132..134].copy_from_slice(&machine.to_le_bytes());
        h
    }

    #[test]
    fn headers_name_the_platform() {
        let linux = |arch| {
            Some(Platform {
                os: Target::Linux,
                arch,
            })
        };
        assert_eq!(identify(&elf(2, 0x3e)), linux(Arch::X86_64));
        assert_eq!(identify(&elf(2, 0xb7)), linux(Arch::Aarch64));
        assert_eq!(identify(&elf(1, 0x28)), None, "32-bit ARM");
        assert_eq!(identify(&elf(2, 0x15)), None, "ppc64");
        assert_eq!(
            identify(&pe(0x8664)),
            Some(Platform {
                os: Target::Windows,
                arch: Arch::X86_64
            })
        );
        assert_eq!(identify(&pe(0x14c)), None, "32-bit Windows");
        assert_eq!(identify(b"#!/bin/sh\n"), None);
        assert_eq!(identify(b"\x7fELF"), None, "truncated");
        let mut far = pe(0x8664);
        far[0x3c..0x40].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(identify(&far), None, "PE offset past the end");
    }

    #[test]
    fn this_build_is_identified_as_itself() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(identify(&exe[..HEADER_BYTES]), Some(Platform::this()));
    }

    #[test]
    fn an_old_stores_agent_counts_for_its_own_architecture_only() {
        let t = tempfile::tempdir().unwrap();
        let store = crate::store::backend::LocalBackend::open(t.path(), true).unwrap();
        let x86 = Platform {
            os: Target::Linux,
            arch: Arch::X86_64,
        };
        let arm = Platform {
            os: Target::Linux,
            arch: Arch::Aarch64,
        };
        assert_eq!(find(&store, x86), None);
        store.put(LEGACY_KEY, &elf(2, 0x3e)).unwrap();
        assert_eq!(find(&store, x86), Some(LEGACY_KEY));
        assert_eq!(find(&store, arm), None);
        assert_eq!(keep(&store, &elf(2, 0xb7)).unwrap(), arm);
        assert_eq!(find(&store, arm), Some("agent/linux-aarch64/carryover"));
        assert_eq!(load(&store, x86).unwrap(), Some((LEGACY_KEY, elf(2, 0x3e))));
        // a file under the aarch64 key whose header says x86_64 is not the aarch64 agent
        store
            .put("agent/linux-aarch64/carryover", &elf(2, 0x3e))
            .unwrap();
        assert_eq!(find(&store, arm), None);
        assert!(keep(&store, b"#!/bin/sh\necho not an agent\n").is_err());
    }
}
