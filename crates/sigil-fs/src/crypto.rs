//! Key derivation and the per-chunk STREAM construction (FORMAT.md §3).
//! All primitives come from `ring`.

use std::cell::RefCell;

use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM};
use ring::{digest, hkdf};
use zeroize::Zeroize;

use crate::format::{FileHeader, HEADER_LEN, MANIFEST_HEADER_LEN, TAG_LEN};
use crate::{FsError, Region, VolumeKey};

const HKDF_SALT: &[u8] = b"sigil-fs/v1";
const INFO_FILE: &[u8] = b"sigil-fs/v1/file";
const INFO_MANIFEST: &[u8] = b"sigil-fs/v1/manifest";

struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive(prk: &hkdf::Prk, info: &[&[u8]], out: &mut [u8]) -> Result<(), FsError> {
    prk.expand(info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| FsError::Crypto("key derivation failed"))
}

/// HKDF-Extract(salt "sigil-fs/v1", volume key): done once per volume, so
/// that each file only pays for HKDF-Expand.
pub(crate) struct FileKeys(hkdf::Prk);

impl FileKeys {
    pub(crate) fn new(vk: &VolumeKey) -> Self {
        FileKeys(hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(vk.as_bytes()))
    }
}

fn aead_key(bytes: &[u8]) -> Result<LessSafeKey, FsError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| FsError::Crypto("bad AES key length"))
}

/// Length of the associated data of an encrypted chunk:
/// header || SHA-256(path).
pub(crate) const FILE_AAD_LEN: usize = HEADER_LEN + 32;

/// Per-file sealing state: the derived key, nonce prefix and AAD.
pub(crate) struct FileCrypto {
    key: LessSafeKey,
    prefix: [u8; 7],
    aad: [u8; FILE_AAD_LEN],
    region: Region,
}

impl FileCrypto {
    /// Derives the file key: HKDF-SHA256(salt "sigil-fs/v1", ikm volume key,
    /// info "sigil-fs/v1/file" || header || SHA-256(path)) -> 32-byte key ||
    /// 7-byte nonce prefix.
    pub(crate) fn new(keys: &FileKeys, header: &FileHeader, path: &[u8]) -> Result<Self, FsError> {
        let mut aad = [0u8; FILE_AAD_LEN];
        aad[..HEADER_LEN].copy_from_slice(&header.encode());
        aad[HEADER_LEN..].copy_from_slice(digest::digest(&digest::SHA256, path).as_ref());
        let mut okm = [0u8; 39];
        derive(&keys.0, &[INFO_FILE, &aad], &mut okm)?;
        let key = aead_key(&okm[..32]);
        let mut prefix = [0u8; 7];
        prefix.copy_from_slice(&okm[32..]);
        okm.zeroize();
        Ok(FileCrypto {
            key: key?,
            prefix,
            aad,
            region: header.region,
        })
    }

    fn nonce(&self, counter: u64, last: bool) -> Nonce {
        let mut n = [0u8; 12];
        n[..7].copy_from_slice(&self.prefix);
        // The layout caps chunks at 2^32, so the counter fits.
        n[7..11].copy_from_slice(&(counter as u32).to_be_bytes());
        n[11] = u8::from(last);
        Nonce::assume_unique_for_key(n)
    }

    /// Seals chunk `i` in place (encrypted region) or authenticates it
    /// (authenticated region: the chunk stays clear, see [`Self::auth_tag`]);
    /// returns the tag.
    pub(crate) fn seal_chunk(
        &self,
        i: u64,
        last: bool,
        chunk: &mut [u8],
    ) -> Result<[u8; TAG_LEN], FsError> {
        let nonce = self.nonce(i, last);
        if self.region == Region::Authenticated {
            return self.auth_tag(nonce, chunk);
        }
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(&self.aad), chunk)
            .map_err(|_| FsError::Crypto("chunk too large for AES-GCM"))?;
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(tag.as_ref());
        Ok(t)
    }

    /// Tag of an authenticated (clear) chunk: the tag of its AES-256-GCM
    /// encryption under the same key, nonce and AAD as an encrypted chunk;
    /// the ciphertext is made in a scratch buffer and thrown away
    /// (FORMAT.md §3). Much faster in `ring` than GMAC with the chunk as
    /// AAD, whose AAD path hashes one block at a time.
    fn auth_tag(&self, nonce: Nonce, chunk: &[u8]) -> Result<[u8; TAG_LEN], FsError> {
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            scratch.clear();
            scratch.extend_from_slice(chunk);
            let tag = self
                .key
                .seal_in_place_separate_tag(nonce, Aad::from(&self.aad), &mut scratch[..])
                .map_err(|_| FsError::Crypto("chunk too large for AES-GCM"))?;
            let mut t = [0u8; TAG_LEN];
            t.copy_from_slice(tag.as_ref());
            Ok(t)
        })
    }

    /// Verifies chunk `i` and decrypts it in place (encrypted region) or
    /// only verifies it (authenticated: recomputes the tag and compares in
    /// constant time). `Err(())` means authentication failed; the caller
    /// names the file and chunk.
    pub(crate) fn open_chunk(
        &self,
        i: u64,
        last: bool,
        chunk: &mut [u8],
        tag: &[u8],
    ) -> Result<(), ()> {
        let nonce = self.nonce(i, last);
        if self.region == Region::Authenticated {
            let expected = self.auth_tag(nonce, chunk).map_err(|_| ())?;
            return if bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], tag)) {
                Ok(())
            } else {
                Err(())
            };
        }
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(tag);
        self.key
            .open_in_place_separate_tag(nonce, Aad::from(&self.aad), Tag::from(t), chunk, 0..)
            .map(|_| ())
            .map_err(|_| ())
    }
}

thread_local! {
    /// Scratch for the throw-away ciphertext of authenticated chunks.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The manifest key: HKDF(volume key, info "sigil-fs/v1/manifest" || salt).
fn manifest_key(vk: &VolumeKey, salt: &[u8]) -> Result<LessSafeKey, FsError> {
    let mut okm = [0u8; 32];
    derive(&FileKeys::new(vk).0, &[INFO_MANIFEST, salt], &mut okm)?;
    let k = aead_key(&okm);
    okm.zeroize();
    k
}

/// Seals a manifest plaintext into the bytes of `manifest.sigil`:
/// header(28) || ciphertext || tag(16). The key is fresh per salt, so the
/// all-zero nonce is used exactly once per key.
pub(crate) fn seal_manifest(
    vk: &VolumeKey,
    salt: [u8; 16],
    mut plaintext: Vec<u8>,
) -> Result<Vec<u8>, FsError> {
    let key = manifest_key(vk, &salt)?;
    let header = manifest_header(&salt);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key([0u8; 12]),
        Aad::from(&header),
        &mut plaintext,
    )
    .map_err(|_| FsError::Crypto("manifest too large for AES-GCM"))?;
    let mut out = Vec::with_capacity(MANIFEST_HEADER_LEN + plaintext.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&plaintext);
    plaintext.zeroize();
    Ok(out)
}

fn manifest_header(salt: &[u8; 16]) -> [u8; MANIFEST_HEADER_LEN] {
    let mut h = [0u8; MANIFEST_HEADER_LEN];
    h[..8].copy_from_slice(&crate::format::MANIFEST_MAGIC);
    h[8] = crate::format::VERSION;
    h[12..28].copy_from_slice(salt);
    h
}

/// Why a sealed manifest could not be opened.
pub(crate) enum ManifestOpenError {
    Format(String),
    Auth,
    Crypto(FsError),
}

/// Checks the clear header and decrypts the manifest in place; returns the
/// plaintext.
pub(crate) fn open_manifest(
    vk: &VolumeKey,
    sealed: &mut [u8],
) -> Result<Vec<u8>, ManifestOpenError> {
    use crate::format::{MANIFEST_MAGIC, VERSION};
    if sealed.len() < MANIFEST_HEADER_LEN + TAG_LEN {
        return Err(ManifestOpenError::Format(format!(
            "truncated ({} bytes, at least {} needed)",
            sealed.len(),
            MANIFEST_HEADER_LEN + TAG_LEN
        )));
    }
    let (header, body) = sealed.split_at_mut(MANIFEST_HEADER_LEN);
    if header[..8] != MANIFEST_MAGIC {
        return Err(ManifestOpenError::Format(
            "bad magic (not a sealed manifest)".into(),
        ));
    }
    if header[8] == 1 {
        return Err(ManifestOpenError::Format(
            "volume format version 1: reseal with this version".into(),
        ));
    }
    if header[8] != VERSION {
        return Err(ManifestOpenError::Format(format!(
            "unsupported volume format version {}",
            header[8]
        )));
    }
    if header[9..12] != [0, 0, 0] {
        return Err(ManifestOpenError::Format(
            "reserved header bytes are not zero".into(),
        ));
    }
    let key = manifest_key(vk, &header[12..28]).map_err(ManifestOpenError::Crypto)?;
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key([0u8; 12]),
            Aad::from(&*header),
            body,
        )
        .map_err(|_| ManifestOpenError::Auth)?;
    Ok(plain.to_vec())
}

/// SHA-256 over a file's header and its chunk tags in order: the "digest of
/// the sealed form" listed in the manifest.
pub(crate) struct TagDigest(digest::Context);

impl TagDigest {
    pub(crate) fn new(header: &[u8; HEADER_LEN]) -> Self {
        let mut c = digest::Context::new(&digest::SHA256);
        c.update(header);
        TagDigest(c)
    }
    pub(crate) fn update(&mut self, tag: &[u8]) {
        self.0.update(tag)
    }
    pub(crate) fn finish(self) -> [u8; 32] {
        let mut d = [0u8; 32];
        d.copy_from_slice(self.0.finish().as_ref());
        d
    }
}

/// SHA-256 of arbitrary bytes.
pub(crate) fn sha256(b: &[u8]) -> [u8; 32] {
    let mut d = [0u8; 32];
    d.copy_from_slice(digest::digest(&digest::SHA256, b).as_ref());
    d
}

/// Fills `buf` from the system random generator.
pub(crate) fn random(buf: &mut [u8]) -> Result<(), FsError> {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| FsError::Crypto("system random generator failed"))
}
