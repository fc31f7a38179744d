//! Talking to the registry: oci-client for authentication (basic, bearer
//! token exchange), blob download and upload and manifest upload; manifests
//! are downloaded by this module with the same TLS settings and the token
//! oci-client obtained, so their size limit holds while reading.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::error::{chain, one_line, Error, IoContext, Result};
use sigil_oci::digest::{Digest, Hasher};
use sigil_oci::spec::is_index_media_type;

use crate::layout::{
    parse_manifest, pick_platform, write_layout_meta, Descriptor, Parsed, Source, ACCEPT,
    ANN_REF_NAME, MT_OCI_MANIFEST,
};
use crate::{parse_reference, Auth, Options, Pulled, Pushed};

/// Largest CA file read.
const MAX_CA_FILE_BYTES: u64 = 1 << 20;
/// Piece size when streaming a blob from disk to the registry.
const UPLOAD_PIECE: usize = 1 << 20;

/// Installs rustls' ring provider as the process default, unless one is
/// installed already. reqwest is built without a provider of its own.
fn ensure_ring_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another thread installing one is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

struct Conn {
    oci: oci_client::Client,
    http: reqwest::Client,
    auth: Auth,
    oci_auth: RegistryAuth,
    insecure: Vec<String>,
    /// Token for manifest requests (bearer registries), fetched once per operation.
    token: Option<zeroize::Zeroizing<String>>,
}

fn load_ca(path: &Path) -> Result<Vec<Vec<u8>>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let meta = std::fs::metadata(path).at(path)?;
    if meta.len() > MAX_CA_FILE_BYTES {
        return Err(Error::Usage(format!(
            "{}: CA file larger than {MAX_CA_FILE_BYTES} bytes",
            path.display()
        )));
    }
    let bytes = std::fs::read(path).at(path)?;
    let certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Usage(format!("{}: bad PEM: {e}", path.display())))?
        .into_iter()
        .map(|c| c.to_vec())
        .collect();
    if certs.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no PEM certificate in the CA file",
            path.display()
        )));
    }
    Ok(certs)
}

impl Conn {
    fn new(auth: &Auth, opts: &Options) -> Result<Conn> {
        ensure_ring_provider();
        let cas = match &opts.ca_file {
            Some(p) => load_ca(p)?,
            None => Vec::new(),
        };
        let protocol = if opts.insecure_registries.is_empty() {
            ClientProtocol::Https
        } else {
            ClientProtocol::HttpsExcept(opts.insecure_registries.clone())
        };
        let config = ClientConfig {
            protocol,
            extra_root_certificates: cas
                .iter()
                .map(|d| Certificate {
                    encoding: CertificateEncoding::Der,
                    data: d.clone(),
                })
                .collect(),
            // One PUT per blob, streamed from disk.
            use_monolithic_push: true,
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(30)),
            read_timeout: Some(std::time::Duration::from_secs(300)),
            ..Default::default()
        };
        let oci = oci_client::Client::try_from(config)
            .map_err(|e| Error::Usage(format!("registry client: {}", chain(&e))))?;
        let mut hb = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(30))
            .read_timeout(std::time::Duration::from_secs(300))
            .user_agent(concat!("sigil-registry/", env!("CARGO_PKG_VERSION")));
        let mut roots = Vec::new();
        for d in &cas {
            roots.push(
                reqwest::Certificate::from_der(d)
                    .map_err(|e| Error::Usage(format!("CA file: {}", chain(&e))))?,
            );
        }
        if !roots.is_empty() {
            hb = hb.tls_certs_merge(roots);
        }
        let http = hb
            .build()
            .map_err(|e| Error::Usage(format!("HTTP client: {}", chain(&e))))?;
        Ok(Conn {
            oci,
            http,
            auth: auth.clone(),
            oci_auth: auth.to_oci(),
            insecure: opts.insecure_registries.clone(),
            token: None,
        })
    }

    /// Authenticates for `op` on the reference's repository. A failure here
    /// is the registry refusing the credentials.
    async fn login(&mut self, r: &Reference, op: RegistryOperation) -> Result<()> {
        let t = self
            .oci
            .auth(r, &self.oci_auth, op)
            .await
            .map_err(|e| match self.map_err(r, &r.whole(), e) {
                // What rustls reports when the other end speaks plain HTTP.
                Error::Registry(m) if m.contains("InvalidContentType") => Error::Registry(format!(
                    "{m} (the registry answers in plain HTTP; if that is intended, list it with --insecure-registry {})",
                    r.registry()
                )),
                e => e,
            })?;
        self.token = t.map(zeroize::Zeroizing::new);
        Ok(())
    }

    fn scheme(&self, registry: &str) -> &'static str {
        if self.insecure.iter().any(|h| h == registry) {
            "http"
        } else {
            "https"
        }
    }

    fn unauthorized(&self, r: &Reference) -> Error {
        Error::Unauthorized {
            registry: r.registry().to_string(),
            who: self.auth.describe(),
        }
    }

    /// Maps an oci-client error to ours; `what` names the object.
    fn map_err(&self, r: &Reference, what: &str, e: OciDistributionError) -> Error {
        match e {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => self.unauthorized(r),
            OciDistributionError::ServerError { code: 401, .. } => self.unauthorized(r),
            OciDistributionError::ServerError { code: 404, .. } => {
                Error::NotFound(format!("{what}: not found in the registry"))
            }
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<String> = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}", e.code))
                    .collect();
                let msg = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}: {}", e.code, one_line(&e.message, 200)))
                    .collect::<Vec<_>>()
                    .join("; ");
                if codes
                    .iter()
                    .any(|c| c.ends_with("Unknown") || c == "NotFound")
                {
                    Error::NotFound(format!("{what}: not found in the registry ({msg})"))
                } else if codes.iter().any(|c| c == "Unauthorized" || c == "Denied") {
                    self.unauthorized(r)
                } else {
                    Error::Registry(format!("{what}: registry error: {msg}"))
                }
            }
            OciDistributionError::ServerError { code, message, .. } => {
                if message.contains("DIGEST_INVALID") {
                    return Error::Registry(format!(
                        "{what}: the registry says the digest does not match the content (DIGEST_INVALID)"
                    ));
                }
                Error::Registry(format!("{what}: HTTP {code}: {}", one_line(&message, 300)))
            }
            OciDistributionError::RequestError(re)
                if re
                    .status()
                    .is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403) =>
            {
                self.unauthorized(r)
            }
            OciDistributionError::RequestError(re)
                if re.status().is_some_and(|s| s.as_u16() == 404) =>
            {
                Error::NotFound(format!("{what}: not found in the registry"))
            }
            OciDistributionError::DigestError(d) => {
                Error::Registry(format!("{what}: {}", one_line(&d.to_string(), 300)))
            }
            other => Error::Registry(format!("{what}: {}", chain(&other))),
        }
    }

    /// GETs a manifest, reading at most `limit` bytes.
    async fn get_manifest(
        &self,
        r: &Reference,
        limit: u64,
    ) -> Result<(Vec<u8>, Option<String>, Option<String>)> {
        let target = r.digest().or(r.tag()).unwrap_or("latest");
        let url = format!(
            "{}://{}/v2/{}/manifests/{}",
            self.scheme(r.resolve_registry()),
            r.resolve_registry(),
            r.repository(),
            target
        );
        let mut req = self.http.get(&url).header("Accept", ACCEPT.join(", "));
        req = match (&self.token, &self.auth) {
            (Some(t), _) => req.bearer_auth(t.as_str()),
            (None, Auth::Basic { username, password }) => {
                req.basic_auth(username, Some(password.as_str()))
            }
            (None, _) => req,
        };
        let mut res = req
            .send()
            .await
            .map_err(|e| Error::Registry(format!("{}: {}", r.whole(), chain(&e))))?;
        let status = res.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(self.unauthorized(r));
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(Error::NotFound(format!(
                "{}: manifest unknown (no such repository, tag or digest in the registry)",
                r.whole()
            )));
        }
        if !status.is_success() {
            let mut body = Vec::new();
            while let Ok(Some(c)) = res.chunk().await {
                body.extend_from_slice(&c);
                if body.len() > 4096 {
                    break;
                }
            }
            return Err(Error::Registry(format!(
                "{}: HTTP {status}: {}",
                r.whole(),
                one_line(&String::from_utf8_lossy(&body), 300)
            )));
        }
        let header = |n: &str| {
            res.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.to_string())
        };
        let ctype = header("content-type");
        let dig = header("docker-content-digest");
        if res.content_length().is_some_and(|n| n > limit) {
            return Err(Error::Limit(format!(
                "{}: manifest is larger than {limit} bytes",
                r.whole()
            )));
        }
        let mut body = Vec::new();
        while let Some(c) = res
            .chunk()
            .await
            .map_err(|e| Error::Registry(format!("{}: {}", r.whole(), chain(&e))))?
        {
            if (body.len() + c.len()) as u64 > limit {
                return Err(Error::Limit(format!(
                    "{}: manifest is larger than {limit} bytes",
                    r.whole()
                )));
            }
            body.extend_from_slice(&c);
        }
        Ok((body, ctype, dig))
    }

    /// Downloads a blob into `path`, checking its size and digest as it
    /// streams; the file is removed on failure.
    async fn fetch_blob(&self, r: &Reference, d: &Descriptor, path: &Path) -> Result<u64> {
        let res = self.fetch_blob_inner(r, d, path).await;
        if res.is_err() {
            let _ = tokio::fs::remove_file(path).await;
        }
        res
    }

    async fn fetch_blob_inner(&self, r: &Reference, d: &Descriptor, path: &Path) -> Result<u64> {
        let what = format!("blob {}", d.digest);
        let desc = OciDescriptor {
            media_type: d.media_type.clone(),
            digest: d.digest.clone(),
            size: d.size as i64,
            urls: None,
            annotations: None,
            artifact_type: None,
        };
        let sized = self
            .oci
            .pull_blob_stream(r, &desc)
            .await
            .map_err(|e| self.map_err(r, &what, e))?;
        if sized.content_length.is_some_and(|n| n > d.size) {
            return Err(Error::Limit(format!(
                "{what}: the registry sends {} bytes but the manifest says {}",
                sized.content_length.unwrap_or_default(),
                d.size
            )));
        }
        let mut stream = sized.stream;
        let mut f = tokio::fs::File::create(path).await.at(path)?;
        let mut hash = Hasher::new();
        let mut n: u64 = 0;
        while let Some(item) = stream.next().await {
            let chunk = match item {
                Ok(c) => c,
                Err(e) => {
                    // oci-client's own check fails at the end of the stream;
                    // report our digest comparison when the size was right.
                    if n == d.size {
                        check_digest(&what, d, hash.current())?;
                    }
                    return Err(Error::Registry(format!("{what}: {}", chain(&e))));
                }
            };
            n += chunk.len() as u64;
            if n > d.size {
                return Err(Error::Limit(format!(
                    "{what}: the registry sent more than the {} bytes the manifest says",
                    d.size
                )));
            }
            hash.update(&chunk);
            f.write_all(&chunk).await.at(path)?;
        }
        if n != d.size {
            return Err(Error::Limit(format!(
                "{what}: the registry sent {n} bytes but the manifest says {}",
                d.size
            )));
        }
        check_digest(&what, d, hash.finish())?;
        f.flush().await.at(path)?;
        f.sync_all().await.at(path)?;
        Ok(n)
    }
}

/// A blob that arrived with digest `actual` is the one `d` names.
fn check_digest(what: &str, d: &Descriptor, actual: Digest) -> Result<()> {
    if actual != d.digest {
        return Err(Error::DigestMismatch {
            what: what.to_string(),
            expected: d.digest.clone(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

/// Checks that fetched manifest bytes are what was asked for: the digest of
/// the reference or descriptor when there is one, and the registry's
/// `Docker-Content-Digest` header when it sent one.
fn verify_manifest(
    what: &str,
    bytes: &[u8],
    expected: Option<&str>,
    header: Option<&str>,
) -> Result<String> {
    let actual = Digest::of(bytes).to_string();
    for exp in [expected, header].into_iter().flatten() {
        if exp.starts_with("sha256:") && exp != actual {
            return Err(Error::DigestMismatch {
                what: what.to_string(),
                expected: one_line(exp, 80),
                actual,
            });
        }
        if !exp.starts_with("sha256:") {
            return Err(Error::Registry(format!(
                "{what}: unsupported digest algorithm in {:?}",
                one_line(exp, 80)
            )));
        }
    }
    Ok(actual)
}

/// Pulls `reference` into a new OCI image layout directory `dest` (which must
/// not exist, or be an empty directory). See [`crate::pull`].
pub async fn pull_async(
    reference: &str,
    dest: &Path,
    auth: &Auth,
    opts: &Options,
) -> Result<Pulled> {
    let r = parse_reference(reference)?;
    if let Ok(mut rd) = std::fs::read_dir(dest) {
        if rd.next().is_some() {
            return Err(Error::Usage(format!(
                "{}: exists and is not empty",
                dest.display()
            )));
        }
    } else if dest.exists() {
        return Err(Error::Usage(format!(
            "{}: exists and is not a directory",
            dest.display()
        )));
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".sigil-pull-")
        .tempdir_in(&parent)
        .at(&parent)?;
    let blobs = tmp.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs).at(&blobs)?;

    let mut conn = Conn::new(auth, opts)?;
    conn.login(&r, RegistryOperation::Pull).await?;
    let limits = &opts.limits;

    let (bytes, ctype, hdr) = conn.get_manifest(&r, limits.max_manifest_bytes).await?;
    let digest = verify_manifest(
        &format!("manifest {}", r.whole()),
        &bytes,
        r.digest(),
        hdr.as_deref(),
    )?;
    let (mt, parsed) = parse_manifest(&bytes, ctype.as_deref(), limits)?;
    let (manifest_bytes, manifest_mt, manifest_digest, index_digest, platform, parsed) =
        match parsed {
            Parsed::Image { .. } => (bytes, mt, digest, None, None, parsed),
            Parsed::Index { manifests } => {
                let entry = pick_platform(&manifests, &opts.platform)?.clone();
                if entry.size > limits.max_manifest_bytes {
                    return Err(Error::Limit(format!(
                        "manifest {} is {} bytes (at most {})",
                        entry.digest, entry.size, limits.max_manifest_bytes
                    )));
                }
                let child = r.clone_with_digest(entry.digest.clone());
                let (b, ct, h) = conn.get_manifest(&child, entry.size).await?;
                let what = format!("manifest {}", entry.digest);
                let d = verify_manifest(&what, &b, Some(&entry.digest), h.as_deref())?;
                if b.len() as u64 != entry.size {
                    return Err(Error::Limit(format!(
                        "{what}: {} bytes but the index says {}",
                        b.len(),
                        entry.size
                    )));
                }
                let media = if entry.media_type.is_empty() {
                    ct
                } else {
                    Some(entry.media_type.clone())
                };
                let (cmt, cp) = parse_manifest(&b, media.as_deref(), limits)?;
                if matches!(cp, Parsed::Index { .. }) {
                    return Err(Error::Registry(format!(
                        "{what}: an index inside an index is not supported"
                    )));
                }
                (b, cmt, d, Some(digest), entry.platform.clone(), cp)
            }
        };
    let Parsed::Image { config, layers } = parsed else {
        return Err(Error::Registry("expected an image manifest".into()));
    };

    let mut total = 0u64;
    let mut seen = std::collections::HashSet::new();
    for d in std::iter::once(&config).chain(layers.iter()) {
        if !seen.insert(d.digest.clone()) {
            continue;
        }
        let p = tmp.path().join(d.digest()?.blob_path());
        total += conn.fetch_blob(&r, d, &p).await?;
    }
    let mp = tmp
        .path()
        .join(Digest::parse_checked(&manifest_digest)?.blob_path());
    std::fs::write(&mp, &manifest_bytes).at(&mp)?;
    let mut annotations = std::collections::BTreeMap::new();
    annotations.insert(ANN_REF_NAME.to_string(), r.whole());
    let desc = Descriptor {
        media_type: manifest_mt.clone(),
        digest: manifest_digest.clone(),
        size: manifest_bytes.len() as u64,
        platform,
        annotations,
    };
    write_layout_meta(tmp.path(), &desc)?;

    if dest.is_dir() {
        std::fs::remove_dir(dest).at(dest)?;
    }
    let tmp_path = tmp.keep();
    if let Err(e) = std::fs::rename(&tmp_path, dest) {
        let _ = std::fs::remove_dir_all(&tmp_path);
        return Err(Error::io(dest, e));
    }
    tracing::info!(reference = %r.whole(), digest = %manifest_digest, bytes = total, "pulled");
    Ok(Pulled {
        reference: r.whole(),
        manifest_digest,
        index_digest,
        media_type: manifest_mt,
        layers: layers.len(),
        bytes: total,
        layout: dest.to_path_buf(),
    })
}

/// A stream of a blob read from disk that fails at the end when the bytes
/// read do not have the expected digest, so that the upload is never
/// committed.
fn file_stream(
    path: PathBuf,
    offset: u64,
    size: u64,
    digest: String,
    mismatch: std::sync::Arc<std::sync::Mutex<Option<String>>>,
) -> impl futures_util::Stream<Item = oci_client::errors::Result<Bytes>> + Send + 'static {
    struct St {
        f: Option<tokio::io::Take<tokio::fs::File>>,
        path: PathBuf,
        offset: u64,
        size: u64,
        hash: Hasher,
        done: bool,
        read: u64,
        digest: String,
        mismatch: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    }
    let st = St {
        f: None,
        path,
        offset,
        size,
        hash: Hasher::new(),
        done: false,
        read: 0,
        digest,
        mismatch,
    };
    futures_util::stream::try_unfold(st, |mut st| async move {
        if st.done {
            return Ok(None);
        }
        if st.f.is_none() {
            let mut f = tokio::fs::File::open(&st.path).await?;
            f.seek(std::io::SeekFrom::Start(st.offset)).await?;
            st.f = Some(f.take(st.size));
        }
        let mut buf = vec![0u8; UPLOAD_PIECE];
        let mut filled = 0;
        if let Some(f) = st.f.as_mut() {
            while filled < buf.len() {
                let n = f.read(&mut buf[filled..]).await?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
        }
        st.read += filled as u64;
        st.hash.update(&buf[..filled]);
        // Check the digest before the last piece goes out: the upload then
        // never completes, so no registry can commit a wrong blob.
        if filled == 0 || st.read == st.size {
            st.done = true;
            let actual = st.hash.current().to_string();
            if st.read != st.size || actual != st.digest {
                if let Ok(mut m) = st.mismatch.lock() {
                    *m = Some(actual.clone());
                }
                return Err(OciDistributionError::GenericError(Some(format!(
                    "local blob {}: digest mismatch (got {actual}); not uploaded",
                    st.digest
                ))));
            }
            if filled == 0 {
                return Ok(None);
            }
        }
        buf.truncate(filled);
        Ok(Some((Bytes::from(buf), st)))
    })
}

struct PushState {
    uploaded: usize,
    skipped: usize,
    bytes: u64,
    done: std::collections::HashSet<String>,
}

async fn push_blob(
    conn: &Conn,
    src: &Source,
    r: &Reference,
    d: &Descriptor,
    st: &mut PushState,
) -> Result<()> {
    if !st.done.insert(d.digest.clone()) {
        return Ok(());
    }
    let what = format!("blob {}", d.digest);
    let (path, off, size) = src.locate_blob(d)?;
    if size != d.size {
        return Err(Error::Layout(format!(
            "local {what}: {size} bytes but the manifest says {}",
            d.size
        )));
    }
    if conn
        .oci
        .blob_exists(r, &d.digest)
        .await
        .map_err(|e| conn.map_err(r, &what, e))?
    {
        st.skipped += 1;
        return Ok(());
    }
    let mismatch = std::sync::Arc::new(std::sync::Mutex::new(None));
    let stream = file_stream(path, off, size, d.digest.clone(), mismatch.clone());
    let res = conn
        .oci
        .push_blob_stream(r, stream, &d.digest, Some(size))
        .await;
    if let Some(actual) = mismatch.lock().ok().and_then(|m| m.clone()) {
        return Err(Error::DigestMismatch {
            what: format!("local {what} (not uploaded)"),
            expected: d.digest.clone(),
            actual,
        });
    }
    res.map_err(|e| conn.map_err(r, &what, e))?;
    st.uploaded += 1;
    st.bytes += size;
    Ok(())
}

/// Uploads an image manifest's blobs, then the manifest under `target`.
async fn push_image(
    conn: &Conn,
    src: &Source,
    r: &Reference,
    target: &Reference,
    d: &Descriptor,
    opts: &Options,
    st: &mut PushState,
) -> Result<()> {
    let bytes = src.read_blob(d, opts.limits.max_manifest_bytes, "manifest")?;
    let mt = (!d.media_type.is_empty()).then_some(d.media_type.as_str());
    let (mt, parsed) = parse_manifest(&bytes, mt, &opts.limits)?;
    let Parsed::Image { config, layers } = parsed else {
        return Err(Error::Layout(format!(
            "manifest {}: an index inside an index is not supported",
            d.digest
        )));
    };
    for b in std::iter::once(&config).chain(layers.iter()) {
        push_blob(conn, src, r, b, st).await?;
    }
    put_manifest(conn, target, bytes, &mt).await
}

async fn put_manifest(conn: &Conn, target: &Reference, bytes: Vec<u8>, mt: &str) -> Result<()> {
    let ct = reqwest::header::HeaderValue::from_str(mt)
        .map_err(|_| Error::Layout(format!("bad media type {:?}", one_line(mt, 80))))?;
    conn.oci
        .push_manifest_raw(target, bytes, ct)
        .await
        .map_err(|e| conn.map_err(target, &format!("manifest {}", target.whole()), e))?;
    Ok(())
}

/// Pushes the image in `src` (OCI layout directory or OCI archive) to
/// `reference`. See [`crate::push`].
pub async fn push_async(
    src: &Path,
    reference: &str,
    auth: &Auth,
    opts: &Options,
) -> Result<Pushed> {
    let r = parse_reference(reference)?;
    if r.digest().is_some() {
        return Err(Error::Reference {
            reference: one_line(reference, 256),
            reason: "push needs a tag, not a digest".into(),
        });
    }
    let source = Source::open(src)?;
    let index = source.index(&opts.limits)?;
    let top = match index.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(Error::Layout(format!(
                "{}: index.json lists no image",
                src.display()
            )))
        }
        many => {
            // Several images: take the one whose ref.name is the tag pushed to.
            let tag = r.tag().unwrap_or("latest");
            many.iter()
                .find(|d| d.has_ref_name(tag))
                .cloned()
                .ok_or_else(|| {
                    Error::Layout(format!(
                        "{}: index.json lists {} images and none is named {tag:?}",
                        src.display(),
                        many.len()
                    ))
                })?
        }
    };
    let mut conn = Conn::new(auth, opts)?;
    conn.login(&r, RegistryOperation::Push).await?;
    let mut st = PushState {
        uploaded: 0,
        skipped: 0,
        bytes: 0,
        done: Default::default(),
    };
    let mt = if top.media_type.is_empty() {
        MT_OCI_MANIFEST.to_string()
    } else {
        top.media_type.clone()
    };
    if is_index_media_type(&mt) {
        let bytes = source.read_blob(&top, opts.limits.max_manifest_bytes, "index")?;
        let (imt, parsed) = parse_manifest(&bytes, Some(&mt), &opts.limits)?;
        let Parsed::Index { manifests } = parsed else {
            return Err(Error::Layout("index: not an index".into()));
        };
        for m in &manifests {
            let child = r.clone_with_digest(m.digest.clone());
            push_image(&conn, &source, &r, &child, m, opts, &mut st).await?;
        }
        put_manifest(&conn, &r, bytes, &imt).await?;
    } else {
        push_image(&conn, &source, &r, &r, &top, opts, &mut st).await?;
    }
    tracing::info!(reference = %r.whole(), digest = %top.digest, "pushed");
    Ok(Pushed {
        reference: r.whole(),
        digest: top.digest.clone(),
        blobs_uploaded: st.uploaded,
        blobs_skipped: st.skipped,
        bytes: st.bytes,
    })
}
