//! The content-addressed part of the store: blobs (chunks of files and of trees),
//! compressed with zstd, grouped in pack files of ~16 MiB (few large objects — matters
//! on S3), and one index object per pack written after the pack, so a pack is usable
//! only once it is whole.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};

use super::codec::{IndexEntry, PackIndex};
use super::node::BlobId;
use crate::store::backend::{Done, ObjectWriter, Transfer};
use crate::store::{Dir, Key, Object, PackId, Store};

/// Packs are sealed once they reach this size.
pub const PACK_TARGET: usize = 16 << 20;
/// A pack built in memory for a concurrent store (S3) never grows past this: one PUT of
/// one part (a 16 MiB pack was a multipart upload of two, four requests), and half the
/// memory for each pack on its way up — so more of them go up at once for the same peak
/// RSS (measured in docs/benchmark.md).
pub const MEMORY_PACK: usize = crate::store::s3::PART_SIZE;
const ZSTD_LEVEL: i32 = 3;

/// Where a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLoc {
    pub pack: u32,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
    pub compressed: bool,
}

/// The in-memory index of every blob in the store.
#[derive(Default)]
pub struct Index {
    pub packs: Vec<PackId>,
    /// The copy of each blob that is read first.
    pub blobs: HashMap<BlobId, BlobLoc>,
    /// Further copies: a capture that healed a damaged blob, or a prune that was
    /// interrupted after it rewrote a pack, leaves a blob in two packs. A reader falls
    /// back to them when the first copy is damaged.
    pub copies: HashMap<BlobId, Vec<BlobLoc>>,
}

impl Index {
    /// Reads every pack index of the store. An index that cannot be read is skipped (its
    /// blobs are then written again) and named in the returned problems.
    pub fn load(store: &Store) -> Result<(Index, Vec<crate::error::Problem>)> {
        let mut idx = Index::default();
        let mut warnings = Vec::new();
        let keys: Vec<String> = store.list_keys(Dir::Index)?.iter().map(Key::path).collect();
        for (key, got) in keys.iter().zip(store.get_indexes(&keys)) {
            let loaded = got?
                .context("vanished")
                .and_then(|b| super::codec::decode_index(&b).context("cannot be decoded"));
            match loaded {
                Ok(pi) => idx.add(pi),
                Err(e) => warnings.push(crate::error::Problem::new(key, format!("{e:#}"))),
            }
        }
        Ok((idx, warnings))
    }

    pub fn add(&mut self, pi: PackIndex) {
        let n = self.packs.len() as u32;
        self.packs.push(pi.pack);
        for e in pi.blobs {
            let loc = BlobLoc {
                pack: n,
                offset: e.offset,
                length: e.length,
                raw_length: e.raw_length,
                compressed: e.compressed,
            };
            match self.blobs.entry(e.id) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(loc);
                }
                std::collections::hash_map::Entry::Occupied(_) => {
                    self.copies.entry(e.id).or_default().push(loc)
                }
            }
        }
    }

    pub fn pack_key(&self, loc: &BlobLoc) -> String {
        pack_key(&self.packs[loc.pack as usize])
    }

    /// Every copy of a blob, the one read first first.
    pub fn locations(&self, id: &BlobId) -> Vec<BlobLoc> {
        let mut v: Vec<BlobLoc> = self.blobs.get(id).copied().into_iter().collect();
        v.extend(self.copies.get(id).into_iter().flatten().copied());
        v
    }

    /// Every copy of every blob.
    pub fn all(&self) -> impl Iterator<Item = (BlobId, BlobLoc)> + '_ {
        let copies = self
            .copies
            .iter()
            .flat_map(|(id, v)| v.iter().map(move |l| (*id, *l)));
        self.blobs.iter().map(|(id, l)| (*id, *l)).chain(copies)
    }

    /// Forgets blobs, every copy of them: a capture then stores them again.
    pub fn forget(&mut self, ids: impl IntoIterator<Item = BlobId>) {
        for id in ids {
            self.blobs.remove(&id);
            self.copies.remove(&id);
        }
    }

    /// Forgets one copy of a blob (a damaged one); another copy, if any, is read first.
    pub fn forget_copy(&mut self, id: &BlobId, loc: &BlobLoc) {
        let mut all = self.locations(id);
        all.retain(|l| l != loc);
        self.forget([*id]);
        let mut rest = all.into_iter();
        if let Some(first) = rest.next() {
            self.blobs.insert(*id, first);
            let more: Vec<BlobLoc> = rest.collect();
            if !more.is_empty() {
                self.copies.insert(*id, more);
            }
        }
    }
}

pub fn pack_key(pack: &PackId) -> String {
    Key::Pack(*pack).path()
}

/// A blob at least this large is sampled before it is compressed.
const SAMPLED: usize = 128 << 10;
/// The size of each of the three samples (head, middle, tail).
const SAMPLE: usize = 16 << 10;

/// Compresses a blob (kept raw when zstd does not make it smaller). A large blob whose
/// samples do not shrink by 3 % (compressed media, archives, encrypted or random data) is
/// kept raw without compressing the whole of it: zstd spends nearly as long failing on
/// such data as it does succeeding on text.
pub fn encode(raw: Vec<u8>, zstd: &mut zstd::bulk::Compressor<'_>) -> Result<(Vec<u8>, bool)> {
    if raw.len() >= SAMPLED {
        let mid = raw.len() / 2 - SAMPLE / 2;
        let mut packed = 0;
        for at in [0, mid, raw.len() - SAMPLE] {
            packed += zstd
                .compress(&raw[at..at + SAMPLE])
                .context("compressing")?
                .len();
        }
        if packed * 100 > 3 * SAMPLE * 97 {
            return Ok((raw, false));
        }
    }
    let c = zstd.compress(&raw).context("compressing")?;
    if c.len() < raw.len() {
        Ok((c, true))
    } else {
        Ok((raw, false))
    }
}

/// A new compressor at the store's level.
pub fn compressor() -> Result<zstd::bulk::Compressor<'static>> {
    zstd::bulk::Compressor::new(ZSTD_LEVEL).context("creating a zstd compressor")
}

/// What a blob is read as: a chunk of a file, or a tree. In an encrypted store each is
/// sealed as its kind, so a tree blob is never read as a file's content or the reverse.
pub const DATA: &[Object<'static>] = &[Object::DataBlob];
pub const TREE: &[Object<'static>] = &[Object::TreeBlob];
/// Either (checks of a blob's integrity that do not use its content).
pub const ANY_BLOB: &[Object<'static>] = &[Object::DataBlob, Object::TreeBlob];

/// Reads a blob of one of `kinds`, decompresses it and checks it against its id; a
/// damaged copy is passed over for the next one (the first copy's error is returned when
/// none is intact).
pub fn read_blob(
    store: &Store,
    index: &Mutex<Index>,
    id: &BlobId,
    kinds: &[Object<'_>],
) -> Result<Vec<u8>> {
    let (packs, locs) = {
        let idx = index.lock().expect("index");
        let locs = idx.locations(id);
        let packs: Vec<String> = locs.iter().map(|l| idx.pack_key(l)).collect();
        (packs, locs)
    };
    let mut first_error = None;
    for (key, loc) in packs.into_iter().zip(locs) {
        match read_at(store, &(key, loc), id, kinds) {
            Ok(raw) => return Ok(raw),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| anyhow::anyhow!("blob {id} is not in the store's index")))
}

/// Reads a located blob, decompresses it and checks it against its id.
pub fn read_at(
    store: &Store,
    (key, loc): &(String, BlobLoc),
    id: &BlobId,
    kinds: &[Object<'_>],
) -> Result<Vec<u8>> {
    if loc.length > MAX_BLOB + 4096 || loc.raw_length > MAX_BLOB {
        bail!(
            "blob {id} in {key} claims {} bytes: more than the format ever makes; refused",
            loc.raw_length.max(loc.length)
        );
    }
    let stored = store
        .backend()
        .get_range(key, loc.offset as u64, loc.length as u64)?;
    decode(store, stored, loc, id, kinds).with_context(|| format!("in {key}"))
}

/// The largest blob the format makes: a 4 MiB chunk, or a tree blob of ~1 MiB plus its last
/// entry. An index that claims more is hostile or damaged (a crafted `raw_length` of 1 GiB
/// would make every restore worker allocate it): refused before anything is allocated.
pub const MAX_BLOB: u32 = 5 << 20;

/// Decrypts a stored blob as one of `kinds`, decompresses it and checks its id.
pub fn decode(
    store: &Store,
    stored: Vec<u8>,
    loc: &BlobLoc,
    id: &BlobId,
    kinds: &[Object<'_>],
) -> Result<Vec<u8>> {
    let made = match decode_ref(store, &stored, loc, id, kinds)? {
        Cow::Owned(raw) => Some(raw),
        Cow::Borrowed(_) => None,
    };
    // a blob neither sealed nor compressed is its own content: no copy
    Ok(made.unwrap_or(stored))
}

/// `decode` of bytes read into a larger buffer (a range of a pack): a blob that is neither
/// sealed nor compressed comes back as the same slice, anything else is made anew.
pub fn decode_ref<'a>(
    store: &Store,
    stored: &'a [u8],
    loc: &BlobLoc,
    id: &BlobId,
    kinds: &[Object<'_>],
) -> Result<Cow<'a, [u8]>> {
    if loc.raw_length > MAX_BLOB || stored.len() as u64 > MAX_BLOB as u64 + 4096 {
        bail!(
            "blob {id} claims {} bytes ({} stored): more than the format ever makes ({MAX_BLOB}); refused",
            loc.raw_length,
            stored.len()
        );
    }
    let stored = store
        .unseal_ref(kinds, stored)
        .with_context(|| format!("blob {id}"))?;
    let raw = if loc.compressed {
        Cow::Owned(
            decompress(&stored, loc.raw_length as usize)
                .with_context(|| format!("blob {id} cannot be decompressed"))?,
        )
    } else {
        stored
    };
    if raw.len() != loc.raw_length as usize || &store.blob_id(&raw) != id {
        bail!("blob {id} is damaged (checksum mismatch)");
    }
    Ok(raw)
}

/// Decompresses with this thread's own zstd context: making one per blob (a few hundred
/// KiB allocated and cleared) was 8 % of a restore of 100,000 small files.
fn decompress(data: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static CONTEXT: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    CONTEXT.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(zstd::bulk::Decompressor::new()?);
        }
        c.as_mut().expect("made above").decompress(data, capacity)
    })
}

/// A blob on its way into a pack.
pub struct Sealed {
    pub id: BlobId,
    pub data: Vec<u8>,
    pub raw_length: u32,
    pub compressed: bool,
}

/// Collects blobs into packs, then writes each pack's index once the pack is stored. To
/// a local store a pack is streamed to its file; to a concurrent one (S3) it is built in
/// memory and handed over whole, so several go up while the next is being filled, and
/// its blobs enter the in-memory index only once pack and index are acknowledged.
pub struct PackWriter {
    store: Store,
    current: Option<(PackId, Open)>,
    size: usize,
    entries: Vec<IndexEntry>,
    index: Arc<Mutex<Index>>,
    /// Packs (with their index) on their way up, oldest first.
    uploading: std::collections::VecDeque<(PackIndex, u64, Box<dyn Transfer>)>,
    pub packs_written: u64,
    pub bytes_written: u64,
}

/// The pack being filled.
enum Open {
    Stream(Box<dyn ObjectWriter>),
    Memory(Vec<u8>),
}

impl PackWriter {
    pub fn new(store: Store, index: Arc<Mutex<Index>>) -> PackWriter {
        PackWriter {
            store,
            current: None,
            size: 0,
            entries: Vec::new(),
            index,
            uploading: Default::default(),
            packs_written: 0,
            bytes_written: 0,
        }
    }

    pub fn add(&mut self, b: Sealed) -> Result<()> {
        // a pack in memory is sealed before a blob would take it past MEMORY_PACK
        if matches!(self.current, Some((_, Open::Memory(_))))
            && self.size + b.data.len() > MEMORY_PACK
        {
            self.seal()?;
        }
        if self.current.is_none() {
            let id = PackId::random();
            let open = if self.store.backend().connections() > 1 {
                Open::Memory(Vec::with_capacity(MEMORY_PACK))
            } else {
                Open::Stream(
                    self.store
                        .backend()
                        .put_stream(&pack_key(&id))
                        .context("writing a pack")?,
                )
            };
            self.current = Some((id, open));
        }
        let (_, open) = self.current.as_mut().expect("a pack is open");
        match open {
            Open::Stream(w) => w.write(&b.data).context("writing a pack")?,
            Open::Memory(buf) => buf.extend_from_slice(&b.data),
        }
        self.entries.push(IndexEntry {
            id: b.id,
            offset: self.size as u32,
            length: b.data.len() as u32,
            raw_length: b.raw_length,
            compressed: b.compressed,
        });
        self.size += b.data.len();
        let target = match open {
            Open::Memory(_) => MEMORY_PACK,
            Open::Stream(_) => PACK_TARGET,
        };
        if self.size >= target {
            self.seal()?;
        }
        Ok(())
    }

    /// Seals the pending pack: it and then its index go to the store (in the background
    /// when the store can).
    fn seal(&mut self) -> Result<()> {
        let Some((id, open)) = self.current.take() else {
            return Ok(());
        };
        let pi = PackIndex {
            pack: id,
            blobs: std::mem::take(&mut self.entries),
        };
        let enc = super::codec::encode_index(&pi);
        let size = std::mem::take(&mut self.size) as u64;
        let index_key = Key::Index(id).path();
        let transfer: Box<dyn Transfer> = match open {
            Open::Stream(w) => {
                w.commit().context("writing a pack")?;
                self.store
                    .backend()
                    .put(&index_key, &enc)
                    .context("writing a pack index")?;
                Box::new(Done)
            }
            Open::Memory(buf) => self
                .store
                .backend()
                .put_in_order(vec![(pack_key(&id), buf), (index_key, enc)])
                .context("writing a pack")?,
        };
        self.uploading.push_back((pi, size, transfer));
        self.collect(false)
    }

    /// Takes in the packs that are stored (every one with `all`), oldest first.
    fn collect(&mut self, all: bool) -> Result<()> {
        while let Some((_, _, t)) = self.uploading.front() {
            if !all && !t.done() {
                break;
            }
            let (pi, size, t) = self.uploading.pop_front().expect("front exists");
            t.wait().context("writing a pack")?;
            self.packs_written += 1;
            self.bytes_written += size;
            self.index.lock().expect("index lock").add(pi);
        }
        Ok(())
    }

    /// Seals the pending pack and waits until every pack and index is stored.
    pub fn flush(&mut self) -> Result<()> {
        self.seal()?;
        self.collect(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_whose_samples_do_not_compress_is_kept_raw_without_compressing_it() {
        let mut x = 3u64;
        let mut noise: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                (x >> 56) as u8
            })
            .collect();
        // zeros away from the samples: compressing the whole would save 64 KiB, which
        // tells whether the whole was compressed
        noise[100 << 10..164 << 10].fill(0);
        let mut z = compressor().unwrap();
        let (out, compressed) = encode(noise.clone(), &mut z).unwrap();
        assert!(!compressed);
        assert_eq!(out, noise);
        // text is compressed as before
        let text = b"GET /index.html 200 1043 Mozilla/5.0\n".repeat(30_000);
        let (out, compressed) = encode(text.clone(), &mut z).unwrap();
        assert!(compressed && out.len() < text.len() / 10);
    }

    #[test]
    fn a_damaged_copy_is_passed_over_for_an_intact_one() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("s");
        let config = crate::config::Config::default();
        let store = Store::open(dir.to_str().unwrap(), &config, true, None).unwrap();
        let raw = b"a blob stored twice ".repeat(50);
        let id = store.blob_id(&raw);
        for _ in 0..2 {
            let mut pw = PackWriter::new(store.clone(), Arc::new(Mutex::new(Index::default())));
            pw.add(Sealed {
                id,
                data: raw.clone(),
                raw_length: raw.len() as u32,
                compressed: false,
            })
            .unwrap();
            pw.flush().unwrap();
        }
        let (index, _) = Index::load(&store).unwrap();
        assert_eq!(index.locations(&id).len(), 2);
        let first = index.blobs[&id];
        let pack = dir.join(index.pack_key(&first));
        let mut bytes = std::fs::read(&pack).unwrap();
        bytes[first.offset as usize + 3] ^= 0x01;
        std::fs::write(&pack, bytes).unwrap();

        let index = Mutex::new(index);
        assert_eq!(read_blob(&store, &index, &id, DATA).unwrap(), raw);
        let mut index = index.into_inner().unwrap();
        index.forget_copy(&id, &first);
        assert_eq!(index.locations(&id).len(), 1);
        assert_ne!(index.blobs[&id], first, "the intact copy is read first now");
        index.forget([id]);
        assert!(read_blob(&store, &Mutex::new(index), &id, DATA).is_err());
    }
}
