//! Free-text extraction never panics, and everything it returns is canonical: parsing a returned
//! value as its own type gives the same value back.
#![no_main]

use aluskort_core::Ioc;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for ioc in aluskort_extract::extract_iocs(&text) {
        let again = Ioc::parse(ioc.kind(), ioc.value());
        assert_eq!(again.as_ref(), Ok(&ioc), "extracted value is not canonical");
    }
});
