//! Fuzzes what the launcher reads from the CAS: the HTTP/1.1 response
//! framing (Content-Length and chunked) and the JSON answers. Nothing may
//! panic; accepted bodies stay within the limit; feeding the same bytes in
//! pieces (as reads deliver them) gives exactly the result of parsing them
//! whole.
//!
//! The first byte steers: bit 0 puts a chunked head in front of the rest,
//! so the chunk framing is explored directly instead of waiting for the
//! fuzzer to spell `Transfer-Encoding: chunked`; the other bits give the
//! size of the pieces.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sigil_client::attest::{AttestAccepted, AttestRefused};
use sigil_init::http::{parse_complete, ResponseParser};

const CHUNKED_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let input: Vec<u8> = if ctl & 1 == 1 {
        [CHUNKED_HEAD, rest].concat()
    } else {
        rest.to_vec()
    };
    let step = usize::from(ctl >> 1) + 1;
    let limit = 4096;

    let whole = parse_complete(&input, limit);
    if let Ok(Some(resp)) = &whole {
        assert!(resp.body.len() <= limit);
        let _ = serde_json::from_slice::<AttestAccepted>(&resp.body);
        let _ = serde_json::from_slice::<AttestRefused>(&resp.body);
    }

    // The same bytes in pieces of `step`: same verdict, same body.
    let mut p = ResponseParser::new(limit);
    let mut pieces = Ok(false);
    for piece in input.chunks(step) {
        pieces = p.feed(piece);
        if !matches!(pieces, Ok(false)) {
            break;
        }
    }
    match (&whole, pieces) {
        (Ok(Some(w)), Ok(true)) => {
            let r = p.finish().expect("complete");
            assert_eq!((w.status, &w.body), (r.status, &r.body));
        }
        (Ok(None), Ok(false)) | (Err(_), Err(_)) => {}
        (w, r) => panic!("whole {:?} vs pieces {:?}", w.as_ref().map(|o| o.is_some()), r),
    }
    let _ = serde_json::from_slice::<AttestAccepted>(data);
});
