//! A scanned ticket code, as a gate's camera or an offline sync hands it over: any
//! text is refused or parsed into fields whose bytes are exactly the signed bytes
//! read, and whose text form parses back to the same code. (Whether the signature
//! holds is the app's question, fuzzed here only as far as parsing goes.)
#![no_main]

use boxoffice_domain::ticket_code::{with_rotating, ScannedCode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(code) = ScannedCode::parse(text) else {
        return;
    };
    assert_eq!(code.payload.to_bytes(), code.signed, "fields and signed bytes differ");
    let mut again = code.payload.encode(&code.signature);
    if let Some(digits) = code.rotating {
        again = with_rotating(&again, digits);
    }
    assert_eq!(ScannedCode::parse(&again).as_ref(), Ok(&code));
});
