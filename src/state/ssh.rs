//! SSH host keys: carried over so that clients keep trusting the server. The public half
//! and its fingerprint are state; the private half is a secret, stored root-only and never
//! printed.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Gather;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostKey {
    /// `ed25519`, `ecdsa`, `rsa`, `dsa`.
    pub key_type: String,
    /// The private key's path; the public one is this plus `.pub`.
    pub path: String,
    pub public: String,
    /// `SHA256:…` as `ssh-keygen -l` prints it.
    pub fingerprint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateKey {
    pub path: String,
    pub content: String,
    pub mode: u32,
}

/// The SHA256 fingerprint of a public key line (`type base64 comment`).
pub fn fingerprint(public_line: &str) -> Option<String> {
    let blob = public_line.split_whitespace().nth(1)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .ok()?;
    let digest = Sha256::digest(&raw);
    Some(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    ))
}

pub fn gather(g: &Gather) -> (Vec<HostKey>, Vec<PrivateKey>) {
    let mut public = Vec::new();
    let mut private = Vec::new();
    for f in g.list("/etc/ssh") {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let Some(kt) = name
            .strip_prefix("ssh_host_")
            .and_then(|r| r.strip_suffix("_key"))
        else {
            continue;
        };
        let inner = format!("/etc/ssh/{name}");
        let Some(content) = g.read(&inner) else {
            continue;
        };
        let mode = std::fs::metadata(&f)
            .map(|m| crate::sys::mode_of(&m))
            .unwrap_or(0o600);
        let pub_text = g.read(&format!("{inner}.pub")).unwrap_or_default();
        public.push(HostKey {
            key_type: kt.to_string(),
            path: inner.clone(),
            fingerprint: fingerprint(&pub_text),
            public: pub_text.trim().to_string(),
        });
        private.push(PrivateKey {
            path: inner,
            content,
            mode,
        });
    }
    (public, private)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_matches_ssh_keygen() {
        // `ssh-keygen -lf` on this key printed SHA256:16m0RK1avw93Jyt93KdQDaoe3MkkYQgvCMHSnjbJy/g
        let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIELFsTTm6AGMDspKDm0h2i3V9DvYKztJcBi8EG7O2iTP root@web01";
        assert_eq!(
            fingerprint(line).as_deref(),
            Some("SHA256:16m0RK1avw93Jyt93KdQDaoe3MkkYQgvCMHSnjbJy/g")
        );
        assert_eq!(fingerprint("garbage"), None);
    }
}
