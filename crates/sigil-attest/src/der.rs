//! Small X.509 helpers on top of x509-parser (parsing only; signatures are
//! verified with ring / webpki).

use crate::VerifyError;

/// Most certificates accepted in one PEM bundle.
pub(crate) const MAX_CERTS: usize = 8;

/// Splits a PEM bundle into DER certificates (at most [`MAX_CERTS`]).
pub(crate) fn pem_certs(what: &'static str, pem: &[u8]) -> Result<Vec<Vec<u8>>, VerifyError> {
    let mut out = Vec::new();
    for p in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let p = p.map_err(|e| VerifyError::Malformed {
            what,
            detail: format!("bad PEM: {e}"),
        })?;
        if p.label != "CERTIFICATE" {
            continue;
        }
        if out.len() == MAX_CERTS {
            return Err(VerifyError::Malformed {
                what,
                detail: format!("more than {MAX_CERTS} certificates"),
            });
        }
        out.push(p.contents);
    }
    if out.is_empty() {
        return Err(VerifyError::Malformed {
            what,
            detail: "no certificate found".into(),
        });
    }
    // The PEM reader is lenient about framing; insist on exactly one
    // BEGIN/END pair per certificate so that altered framing is refused.
    let count = |needle: &[u8]| pem.windows(needle.len()).filter(|w| *w == needle).count();
    if count(b"-----BEGIN CERTIFICATE-----") != out.len()
        || count(b"-----END CERTIFICATE-----") != out.len()
    {
        return Err(VerifyError::Malformed {
            what,
            detail: "PEM framing is not BEGIN/END CERTIFICATE".into(),
        });
    }
    // Outside the base64 bodies only line breaks (and the NUL terminator
    // Intel's QE appends) are allowed; inside, only base64 and line breaks.
    let mut inside = false;
    for line in pem.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line == b"-----BEGIN CERTIFICATE-----" {
            inside = true;
        } else if line == b"-----END CERTIFICATE-----" {
            inside = false;
        } else if inside {
            if !line
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
            {
                return Err(VerifyError::Malformed {
                    what,
                    detail: "unexpected character in PEM body".into(),
                });
            }
        } else if !line.iter().all(|b| *b == 0) {
            return Err(VerifyError::Malformed {
                what,
                detail: "unexpected text outside PEM blocks".into(),
            });
        }
    }
    Ok(out)
}

/// What we need from a certificate: its public key bits, validity and names.
pub(crate) struct CertInfo {
    pub spki_bits: Vec<u8>,
    pub not_before: u64,
    pub not_after: u64,
    pub subject: String,
    pub issuer: String,
    pub serial: Vec<u8>,
}

pub(crate) fn cert_info(what: &'static str, der: &[u8]) -> Result<CertInfo, VerifyError> {
    let (_, c) = x509_parser::parse_x509_certificate(der).map_err(|e| VerifyError::Malformed {
        what,
        detail: format!("bad certificate: {e}"),
    })?;
    let ts = |t: i64| u64::try_from(t).unwrap_or(0);
    Ok(CertInfo {
        spki_bits: c.public_key().subject_public_key.data.to_vec(),
        not_before: ts(c.validity().not_before.timestamp()),
        not_after: ts(c.validity().not_after.timestamp()),
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        serial: c.raw_serial().to_vec(),
    })
}

/// This/next update and issuer of a CRL.
pub(crate) struct CrlDates {
    pub this_update: u64,
    pub next_update: Option<u64>,
    pub issuer: String,
}

pub(crate) fn crl_dates(what: &'static str, der: &[u8]) -> Result<CrlDates, VerifyError> {
    let (_, c) = x509_parser::parse_x509_crl(der).map_err(|e| VerifyError::Malformed {
        what,
        detail: format!("bad CRL: {e}"),
    })?;
    let ts = |t: i64| u64::try_from(t).unwrap_or(0);
    Ok(CrlDates {
        this_update: ts(c.last_update().timestamp()),
        next_update: c.next_update().map(|t| ts(t.timestamp())),
        issuer: c.issuer().to_string(),
    })
}
